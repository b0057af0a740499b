//! A command-line error as one log line: clap's rendered error folded so the
//! names of the arguments at fault and the usage hint survive.

/// Folds clap's rendered error into one line. clap writes paragraphs (the
/// message, then perhaps a `tip:`, the usage and a pointer to `--help`), and
/// puts details on indented lines under a paragraph's first line: the missing
/// arguments, the possible values, a second usage line. Each paragraph becomes
/// its lines joined (a list after a `...:` line with commas, usage lines with
/// ` | `), and the paragraphs are joined with `; `.
pub fn one_line(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for paragraph in rendered.split("\n\n") {
        let mut lines = paragraph.lines().map(str::trim).filter(|line| !line.is_empty());
        let Some(first) = lines.next() else { continue };
        let details: Vec<&str> = lines.collect();
        let mut part = first.to_string();
        if !details.is_empty() {
            let (lead, separator) = if first.starts_with("Usage:") {
                (" | ", " | ")
            } else if first.ends_with(':') {
                (" ", ", ")
            } else {
                (" ", " ")
            };
            part.push_str(lead);
            part.push_str(&details.join(separator));
        }
        // A sentence's full stop goes; an ellipsis (`<COMMAND>...`) stays.
        let part = match part.strip_suffix('.') {
            Some(sentence) if !sentence.ends_with('.') => sentence,
            _ => part.as_str(),
        };
        let part = match parts.is_empty() {
            true => part.trim_start_matches("error: ").to_string(),
            false => lowercase_first(part),
        };
        parts.push(part);
    }
    if parts.is_empty() {
        return "invalid command line".to_string();
    }
    parts.join("; ")
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_arguments_keep_their_names_and_the_usage() {
        let rendered = "error: the following required arguments were not provided:\n  <PATH>\n  <COMMAND>...\n\n\
                        Usage: ringmaster ctl <PATH> <COMMAND>...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "the following required arguments were not provided: <PATH>, <COMMAND>...; \
             usage: ringmaster ctl <PATH> <COMMAND>...; for more information, try '--help'"
        );
    }

    #[test]
    fn possible_values_tips_and_two_usage_lines_stay_on_the_line() {
        let rendered = "error: invalid value 'foo' for '--mode <MODE>'\n  [possible values: rr, shared]\n\n\
                        For more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "invalid value 'foo' for '--mode <MODE>' [possible values: rr, shared]; for more information, try '--help'"
        );
        let rendered = "error: unexpected argument '--mod' found\n\n  tip: a similar argument exists: '--mode'\n\n\
                        Usage: ringmaster [OPTIONS]\n       ringmaster <COMMAND>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "unexpected argument '--mod' found; tip: a similar argument exists: '--mode'; \
             usage: ringmaster [OPTIONS] | ringmaster <COMMAND>; for more information, try '--help'"
        );
        assert_eq!(one_line("\n"), "invalid command line");
    }
}
