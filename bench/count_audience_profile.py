import sqlite3, uuid, time, os, sys
# Profiles the audience count query on a million contacts, outside mailroom.
db='/tmp/count.db'
if not os.path.exists(db):
    c=sqlite3.connect(db)
    c.executescript(open(os.path.join(os.path.dirname(__file__), '..', 'migrations/sqlite/0001_core.sql')).read())
    c.executescript(open(os.path.join(os.path.dirname(__file__), '..', 'migrations/sqlite/0002_pipeline.sql')).read())
    c.execute("INSERT INTO tenants VALUES ('t','T',NULL,NULL,NULL,NULL,0,0)")
    c.execute("""INSERT INTO contacts (id, tenant_id, email, email_normalized, first_name, tags, attributes, status, created_at, updated_at)
      WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM s WHERE i+1 < 1000000)
      SELECT printf('0193a6f0-7b1c-7c9e-9a51-%012x', i), 't', 'user'||i||'@x.org', 'user'||i||'@x.org', 'U', '["news"]', '{}', 'subscribed', 0, 0 FROM s""")
    c.execute("INSERT INTO contact_tags SELECT 't', id, 'news' FROM contacts")
    c.commit()
c=sqlite3.connect(db)
q="""SELECT COUNT(*) FROM contacts c JOIN contact_tags t ON t.contact_id = c.id AND t.tenant_id = 't' AND t.tag = 'news'
WHERE c.tenant_id = 't' AND c.status = 'subscribed' AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = c.tenant_id AND s.email_normalized = c.email_normalized)"""
print([r[3] for r in c.execute('EXPLAIN QUERY PLAN '+q)])
for _ in range(int(sys.argv[1]) if len(sys.argv)>1 else 3):
    t=time.time(); n=c.execute(q).fetchone()[0]; print(n, round((time.time()-t)*1000), 'ms')
