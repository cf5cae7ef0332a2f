//! The starter templates ([`crate::domain::starters`]) compile and render.

#[cfg(test)]
mod tests {
    use crate::domain::starters::STARTERS;
    use crate::render::template::Compiled;

    #[test]
    fn every_starter_compiles_and_renders_with_no_variables() {
        for s in &STARTERS {
            let t = Compiled::new(s.subject, s.html, None, 100_000).unwrap();
            let (subject, html, _) =
                t.render(&minijinja::context! { tenant => minijinja::context! { name => "Acme" } }).unwrap();
            assert!(!subject.is_empty() && html.contains("Acme"), "{}", s.name);
        }
    }
}
