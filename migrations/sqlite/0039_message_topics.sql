-- Issue 23 (section 1): an automation's email may target a topic, as a
-- campaign does (its action's `topic_id`, or the topic of the campaign whose
-- email triggered the rule). The message keeps the topic's id: the claim
-- checks the contact's choice on it again (invariant 3), and one-click
-- unsubscribe from the email leaves that topic only. No foreign key (a
-- deleted topic's unsent mail is stopped at claim) and no index: it is read
-- only from a message already in hand.
ALTER TABLE messages ADD COLUMN topic_id TEXT;
