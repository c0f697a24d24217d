//! Escaping text for XML, which the launchd plist, the Windows task and the
//! Windows toast are written in.

/// The entity that stands for `c` in XML content and attributes, if it is
/// one of the five markup characters.
pub(crate) fn entity(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&apos;"),
        _ => None,
    }
}

/// `text` for XML content or attributes: the markup characters as entities,
/// everything else as it is.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match entity(c) {
            Some(entity) => escaped.push_str(entity),
            None => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_become_entities_and_nothing_else_changes() {
        assert_eq!(
            escape("/opt/R&D <x> \"q\" 'a' é"),
            "/opt/R&amp;D &lt;x&gt; &quot;q&quot; &apos;a&apos; é"
        );
        assert_eq!(entity('a'), None);
    }
}
