//! Tenant templates, rendered with minijinja.
//!
//! Templates are written by tenants, so they are untrusted input: syntax is
//! checked when a template is saved, rendering has a fuel limit (a loop cannot
//! run away) and a recursion limit, and the output has a size limit. Values
//! placed into `html` are HTML-escaped; `subject` and `text` are plain text and
//! are not. An undefined variable renders empty: a missing attribute on one
//! contact never fails a send.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

use super::{Recipient, Rendered};

/// Instructions a render may execute (a template of a few pages of markup
/// with loops over a contact's attributes uses a few thousand).
pub const FUEL: u64 = 200_000;
const RECURSION_LIMIT: usize = 16;

/// The parts of a template, by the names errors use.
pub const SUBJECT: &str = "subject";
pub const HTML: &str = "html";
pub const TEXT: &str = "text";

/// A template that failed to compile or to render: which part, where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub part: &'static str,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The template ran out of fuel or produced too much: whatever the data,
    /// it does too much work (other render errors may depend on the data).
    pub runaway: bool,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.part)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
            if let Some(column) = self.column {
                write!(f, ", column {column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl TemplateError {
    fn from_minijinja(part: &'static str, source: &str, e: &minijinja::Error) -> Self {
        let message = match e.kind() {
            ErrorKind::OutOfFuel => "the template does too much work (fuel limit reached): check its loops".to_owned(),
            _ => match e.detail() {
                Some(detail) => format!("{}: {detail}", e.kind()),
                None => e.kind().to_string(),
            },
        };
        // The column is counted in characters from the start of the error's line.
        let column = e.range().and_then(|r| {
            let before = source.get(..r.start)?;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            Some(before[line_start..].chars().count() + 1)
        });
        // Out of fuel, or recursing without end: no data makes it behave.
        let runaway = matches!(e.kind(), ErrorKind::OutOfFuel)
            || e.detail().is_some_and(|d| d.contains("recursion limit"))
            || e.to_string().contains("recursion limit");
        Self { part, line: e.line(), column, message, runaway }
    }

    fn too_large(part: &'static str, max: usize) -> Self {
        Self {
            part,
            line: None,
            column: None,
            message: format!("renders to more than {max} bytes, the most allowed"),
            runaway: true,
        }
    }
}

/// A template's parts, compiled once and rendered many times.
pub struct Compiled {
    env: Environment<'static>,
    has_text: bool,
    max_output: usize,
}

fn environment(fuel: u64) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(fuel));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|name| if name == HTML { AutoEscape::Html } else { AutoEscape::None });
    env
}

impl Compiled {
    /// Compiles the parts; a syntax error names the part, line and column.
    /// `max_output` bounds each rendered part, in bytes; a render may execute
    /// [`FUEL`] instructions.
    pub fn new(subject: &str, html: &str, text: Option<&str>, max_output: usize) -> Result<Self, TemplateError> {
        Self::with_fuel(subject, html, text, max_output, FUEL)
    }

    /// [`Compiled::new`] with `fuel` instructions per render.
    pub fn with_fuel(
        subject: &str,
        html: &str,
        text: Option<&str>,
        max_output: usize,
        fuel: u64,
    ) -> Result<Self, TemplateError> {
        let mut env = environment(fuel);
        for (part, source) in [(SUBJECT, Some(subject)), (HTML, Some(html)), (TEXT, text)] {
            if let Some(source) = source {
                // Adding may defer parsing: getting the template parses it now.
                env.add_template_owned(part, source.to_owned())
                    .and_then(|()| env.get_template(part).map(|_| ()))
                    .map_err(|e| TemplateError::from_minijinja(part, source, &e))?;
            }
        }
        Ok(Self { env, has_text: text.is_some(), max_output })
    }

    /// Refuses a template that reaches for another: `include`, `import`,
    /// `from` and `extends` (the first found, with its part and line).
    /// Templates are self-contained: an `include` of another part rendered it
    /// under that part's escaping (the subject's is none), and nothing else
    /// is there to reach. Read from the compiled instructions, so a comment
    /// or a `raw` block that merely spells one out is not refused.
    pub fn self_contained(&self) -> Result<(), TemplateError> {
        use minijinja::machinery::{get_compiled_template, Instruction, Instructions};
        fn reaching_out(code: &Instructions<'_>) -> Option<(u32, &'static str)> {
            (0..u32::try_from(code.len()).unwrap_or(u32::MAX)).find_map(|i| match code.get(i)? {
                Instruction::Include(_) => Some((i, "`include`, `import` and `from`")),
                Instruction::LoadBlocks => Some((i, "`extends`")),
                _ => None,
            })
        }
        for part in [SUBJECT, HTML, TEXT] {
            let Ok(template) = self.env.get_template(part) else { continue };
            let compiled = get_compiled_template(&template);
            let found = std::iter::once(&compiled.instructions)
                .chain(compiled.blocks.values())
                .find_map(|code| reaching_out(code).map(|(i, what)| (code.get_line(i), what)));
            if let Some((line, what)) = found {
                return Err(TemplateError {
                    part,
                    line,
                    column: None,
                    message: format!(
                        "templates are self-contained: {what} of another template are not allowed; \
                         write the content here instead"
                    ),
                    runaway: false,
                });
            }
        }
        Ok(())
    }

    /// Renders every part with `ctx`. `text` is `None` when the template has none.
    pub fn render(&self, ctx: &Value) -> Result<(String, String, Option<String>), TemplateError> {
        let subject = self.part(SUBJECT, ctx)?;
        let html = self.part(HTML, ctx)?;
        let text = if self.has_text { Some(self.part(TEXT, ctx)?) } else { None };
        Ok((subject, html, text))
    }

    fn part(&self, part: &'static str, ctx: &Value) -> Result<String, TemplateError> {
        let template = self.env.get_template(part).map_err(|e| TemplateError::from_minijinja(part, "", &e))?;
        // Written through a cap, so output past the limit stops the render
        // at once rather than being built and measured afterwards.
        let mut out = Capped { buf: Vec::new(), max: self.max_output, over: false };
        if let Err(e) = template.render_captured_to(ctx, &mut out) {
            if out.over {
                return Err(TemplateError::too_large(part, self.max_output));
            }
            return Err(TemplateError::from_minijinja(part, template.source(), &e));
        }
        String::from_utf8(out.buf).map_err(|_| TemplateError {
            part,
            line: None,
            column: None,
            message: "renders to invalid UTF-8".into(),
            runaway: false,
        })
    }
}

/// A buffer that refuses to grow past `max` bytes.
struct Capped {
    buf: Vec<u8>,
    max: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.max {
            self.over = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compiled templates kept for reuse (a campaign renders one template many times).
const CACHE_ENTRIES: usize = 64;

/// Compiles templates, keeping them by their source, and renders them.
#[derive(Default)]
pub struct Templates {
    cache: Mutex<HashMap<[u8; 32], Arc<Compiled>>>,
}

impl Templates {
    /// Compiles a template (or takes it from the cache), with `fuel` per render.
    pub fn compile(
        &self,
        subject: &str,
        html: &str,
        text: Option<&str>,
        max_output: usize,
        fuel: u64,
    ) -> Result<Arc<Compiled>, TemplateError> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((max_output as u64).to_le_bytes());
        h.update(fuel.to_le_bytes());
        for part in [Some(subject), Some(html), text] {
            let part = part.unwrap_or("\0none");
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let key: [u8; 32] = h.finalize().into();
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let compiled = Arc::new(Compiled::with_fuel(subject, html, text, max_output, fuel)?);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// Renders a template for one recipient; the text part is derived from the
    /// html when the template has none. This runs in a render worker (see
    /// `sandbox`), never in the server.
    pub fn render(
        &self,
        subject: &str,
        html: &str,
        text: Option<&str>,
        (max_output, fuel): (usize, u64),
        to: &Recipient,
    ) -> Result<Rendered, TemplateError> {
        self.compile(subject, html, text, max_output, fuel)?.render_for(to)
    }
}

impl Compiled {
    /// Renders for one recipient; the text part is derived from the html
    /// when the template has none. A job renders many recipients from one
    /// compiled template: it does not look the template up again for each
    /// (hashing its source every time).
    pub fn render_for(&self, to: &Recipient) -> Result<Rendered, TemplateError> {
        let (subject, html, text) = self.render(&to.context())?;
        let text = text.unwrap_or_else(|| html_to_text(&html));
        // Derived text can be larger than its html (a table's cells become
        // padded lines): it is bounded like every part.
        if text.len() > self.max_output {
            return Err(TemplateError::too_large(TEXT, self.max_output));
        }
        Ok(Rendered { subject, html, text: Some(text) })
    }
}

/// Plain text from html, for a template or send without its own text part.
pub fn html_to_text(html: &str) -> String {
    if nesting_depth(html) > MAX_TEXT_DEPTH {
        return stripped_text(html);
    }
    html2text::from_read(html.as_bytes(), 78).unwrap_or_default().trim_end().to_owned()
}

/// The deepest nesting of elements html2text is given. Its time grows with the
/// square of the depth (20,000 nested `<div>`s, 220 KB, took 20 s of a worker
/// thread); real email, table layouts included, stays far below this. Deeper
/// html gets [`stripped_text`] instead.
const MAX_TEXT_DEPTH: usize = 200;

/// Elements that never have a closing tag.
const VOID_ELEMENTS: [&str; 14] =
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"];

/// How deep elements nest, counting open tags against close tags (an element
/// left open counts as nested: an overestimate, never an underestimate).
fn nesting_depth(html: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        if rest.starts_with('/') {
            depth = depth.saturating_sub(1);
            continue;
        }
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        // The tag ends at its `>`, or at the next `<` if it is never closed
        // (looking on to the end for every `<` would be quadratic itself).
        let tag = &rest[..rest.find(['<', '>']).unwrap_or(rest.len())];
        let name = tag.split(|c: char| c.is_ascii_whitespace() || c == '/').next().unwrap_or("");
        if !tag.ends_with('/') && !VOID_ELEMENTS.iter().any(|v| v.eq_ignore_ascii_case(name)) {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

/// The text of html without its tags, whitespace collapsed and the common
/// entities decoded: the plain part of an email too deeply nested for html2text.
fn stripped_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn compile(subject: &str, html: &str, text: Option<&str>) -> Result<Compiled, TemplateError> {
        Compiled::new(subject, html, text, 100_000)
    }

    #[test]
    fn deeply_nested_html_gets_a_plain_text_at_once() {
        let deep = format!("{}Hello &amp; bye{}", "<div>".repeat(20_000), "</div>".repeat(20_000));
        assert!(nesting_depth(&deep) > MAX_TEXT_DEPTH);
        assert_eq!(html_to_text(&deep), "Hello & bye");
        let email = "<table><tr><td><p>Hi<br>there</p><img src=x></td></tr></table>";
        assert_eq!(nesting_depth(email), 4);
        // Unclosed tags: each one read up to the next `<`, not to the end of the
        // document (which took a minute for 512 KB).
        let started = std::time::Instant::now();
        assert!(nesting_depth(&"<a".repeat(262_144)) > MAX_TEXT_DEPTH);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(html_to_text(email).contains("Hi"));
    }

    #[test]
    fn html_is_escaped_but_subject_and_text_are_not() {
        let t = compile("Hi {{ name }}", "<p>{{ name }}</p>", Some("Hi {{ name }}")).unwrap();
        let (subject, html, text) = t.render(&context! { name => "<b>A&B</b>" }).unwrap();
        assert_eq!(subject, "Hi <b>A&B</b>");
        assert_eq!(html, "<p>&lt;b&gt;A&amp;B&lt;&#x2f;b&gt;</p>");
        assert_eq!(text.as_deref(), Some("Hi <b>A&B</b>"));
    }

    #[test]
    fn a_syntax_error_names_the_part_line_and_column() {
        let err = compile("ok", "<p>\n  {{ name </p>", None).err().unwrap();
        assert_eq!(err.part, HTML);
        assert_eq!(err.line, Some(2));
        assert!(err.column.is_some(), "{err}");
        assert!(err.to_string().starts_with("`html` line 2, column"), "{err}");
    }

    #[test]
    fn undefined_values_render_empty_even_when_chained() {
        let t =
            compile("{{ missing }}", "{{ contact.attributes.plan.name }}|{{ first_name | default('there') }}", None)
                .unwrap();
        let (subject, html, _) = t.render(&context! { contact => context! { email => "a@b.c" } }).unwrap();
        assert_eq!(subject, "");
        assert_eq!(html, "|there");
    }

    #[test]
    fn a_runaway_loop_stops_at_the_fuel_limit() {
        let t = compile("s", "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", None)
            .unwrap();
        let err = t.render(&context! {}).err().unwrap();
        assert!(err.message.contains("fuel"), "{err}");
        assert!(err.runaway);
    }

    #[test]
    fn output_larger_than_the_limit_is_refused() {
        let t = Compiled::new("s", "{{ 'x' * 5000 }}", None, 1000).unwrap();
        let err = t.render(&context! {}).err().unwrap();
        assert!(err.message.contains("more than 1000"), "{err}");
        assert!(err.runaway);
        // Stopped as it writes, not once it has built everything.
        let t = Compiled::new("s", "{% for i in range(90000) %}{{ 'x' * 100000 }}{% endfor %}", None, 1000).unwrap();
        assert!(t.render(&context! {}).err().unwrap().message.contains("more than 1000"));
    }

    #[test]
    fn a_template_that_reaches_for_another_is_not_self_contained() {
        for (html, what) in [
            ("<p>{% include 'subject' %}</p>", "include"),
            ("{% if x %}\n{% include ['a', 'subject'] ignore missing %}{% endif %}", "include"),
            ("{% import 'subject' as s %}{{ s.m() }}", "import"),
            ("{% from 'subject' import m %}", "from"),
            ("{% extends 'subject' %}{% block b %}x{% endblock %}", "extends"),
            ("{% for i in [1] %}{% macro m() %}{% include 'text' %}{% endmacro %}{% endfor %}", "include"),
            ("{% block b %}{% include 'subject' %}{% endblock %}", "include"),
        ] {
            let err = compile("s", html, None).unwrap().self_contained().err();
            let err = err.unwrap_or_else(|| panic!("{html} was let through"));
            assert_eq!(err.part, HTML, "{html}");
            assert!(err.message.contains(what) && err.message.contains("self-contained"), "{html}: {err}");
            assert!(!err.runaway);
        }
        let err = compile("s", "ok", Some("a\n{% include 'html' %}")).unwrap().self_contained().unwrap_err();
        assert_eq!((err.part, err.line), (TEXT, Some(2)), "{err}");
        // Only what runs counts: a comment, a raw block or a string may spell it out.
        for html in [
            "{# {% include 'subject' %} #}<p>hi</p>",
            "{% raw %}{% include 'subject' %}{% extends 'x' %}{% endraw %}",
            "{{ \"{% import 'x' as y %}\" }} {% set from = 1 %}{{ from }}",
        ] {
            assert_eq!(compile("s", html, None).unwrap().self_contained(), Ok(()), "{html}");
        }
    }

    #[test]
    fn text_is_derived_from_html() {
        let text = html_to_text("<h1>Hello</h1><p>Your order <a href=\"https://x.test/o\">ships</a>.</p>");
        assert!(text.contains("Hello"), "{text}");
        assert!(text.contains("https://x.test/o"), "{text}");
        assert!(!text.contains("<p>"), "{text}");
    }
}
