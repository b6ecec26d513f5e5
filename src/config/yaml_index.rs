//! Maps YAML paths (`segments.smb.schedule`, `late_payment.reference_rates[2].from`) to
//! the line they start on, so validation errors found after deserialisation can still
//! point at the right line of the user's file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Default)]
pub struct YamlIndex {
    lines: HashMap<String, usize>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

struct Builder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Builder {
    /// The path of the value that the next event starts, and advances the parent.
    fn next_value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                Some(p)
            }
        }
    }

    /// Whether the next scalar in a mapping is a key.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, ..) => {
                if self.expecting_key() {
                    if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                        self.lines.entry(join(path, &text)).or_insert(mark.line());
                        *key = Some(text);
                    }
                } else if let Some(p) = self.next_value_path() {
                    self.lines.entry(p).or_insert(mark.line());
                }
            }
            Event::Alias(_) => {
                self.next_value_path();
            }
            Event::MappingStart(..) => {
                let path = self.next_value_path().unwrap_or_default();
                self.lines.entry(path.clone()).or_insert(mark.line());
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.next_value_path().unwrap_or_default();
                self.lines.entry(path.clone()).or_insert(mark.line());
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl YamlIndex {
    /// Indexes a YAML document. A document that does not parse gives an empty index
    /// (the YAML error itself is reported by the deserialiser, with its own line).
    pub fn build(source: &str) -> YamlIndex {
        let mut b = Builder {
            stack: Vec::new(),
            lines: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(source);
        if parser.load(&mut b, false).is_err() {
            return YamlIndex::default();
        }
        YamlIndex { lines: b.lines }
    }

    /// The line of `path`, or of its closest ancestor present in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path.to_string();
        loop {
            if let Some(l) = self.lines.get(&p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_lines() {
        let src = "database:\n  url: x\nsegments:\n  smb:\n    rules: a.rhai\n    schedule: '0 0 9 * * *'\nlist:\n  - a\n  - { from: 2026-01-01, rate: 2 }\n";
        let idx = YamlIndex::build(src);
        assert_eq!(idx.line_of("database.url"), Some(2));
        assert_eq!(idx.line_of("segments.smb.schedule"), Some(6));
        assert_eq!(idx.line_of("list[1].rate"), Some(9));
        assert_eq!(idx.line_of("list[0]"), Some(8));
        assert_eq!(idx.line_of("segments.smb.missing"), Some(4));
    }
}
