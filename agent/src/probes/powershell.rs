//! Reading what PowerShell prints: `Format-List` records and `Format-Table` tables.

/// One object PowerShell printed: its properties in order, as text.
pub(crate) type Record = Vec<(String, String)>;

/// A property's value, matched case-insensitively; `None` when absent or empty.
pub(crate) fn field<'a>(record: &'a Record, key: &str) -> Option<&'a str> {
    record
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// `Key : value` lines, records separated by blank lines; wrapped values continue indented.
pub(crate) fn list_records(text: &str) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    let mut current: Record = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                records.push(std::mem::take(&mut current));
            }
        } else if line.starts_with(char::is_whitespace) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        records.push(current);
    }
    records
}

/// A line of dashes under a table's header.
pub(crate) fn is_rule(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && line.chars().all(|c| c == '-' || c == ' ') && line.contains("--")
}

/// PowerShell's table view: columns start where the dashes under the header start;
/// headers split over two lines ("Mount" / "Point") are joined.
pub(crate) fn table_records(text: &str) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(rule) = lines.iter().position(|line| is_rule(line)) else {
        return Vec::new();
    };
    let rule_chars: Vec<char> = lines[rule].chars().collect();
    let starts: Vec<usize> = (0..rule_chars.len())
        .filter(|&at| rule_chars[at] == '-' && (at == 0 || rule_chars[at - 1] != '-'))
        .collect();
    let cell = |line: &str, column: usize| -> String {
        let chars: Vec<char> = line.chars().collect();
        let from = starts[column].min(chars.len());
        let to = starts
            .get(column + 1)
            .copied()
            .unwrap_or(chars.len())
            .min(chars.len());
        chars[from..to].iter().collect::<String>().trim().to_owned()
    };
    let header_lines = &lines[rule.saturating_sub(2)..rule];
    let names: Vec<String> = (0..starts.len())
        .map(|column| {
            header_lines
                .iter()
                .map(|line| cell(line, column))
                .collect::<String>()
        })
        .collect();
    lines[rule + 1..]
        .iter()
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            names
                .iter()
                .enumerate()
                .map(|(column, name)| (name.clone(), cell(line, column)))
                .collect()
        })
        .collect()
}
