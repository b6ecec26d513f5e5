//! Typing a section without stopping at its first problem. serde stops at the first
//! error; to report every problem of a file in one run, each error is recorded, the
//! offending value is taken out of the YAML tree (or replaced by a stand-in when the
//! field is required), and the section is typed again, until it types. The values the
//! section was typed with are then validated as usual, except those standing in for a
//! bad or missing value: problems found under them are consequences, not findings.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::secret::is_secret_path;

/// One step into the YAML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// What typing a section found.
pub(super) struct Typed<T> {
    pub value: Option<T>,
    /// `(path, message)` of every problem.
    pub issues: Vec<(String, String)>,
    /// Paths whose value stands in for a bad or missing one.
    pub stand_ins: Vec<String>,
}

/// At most this many problems are looked for in one section.
const MAX_ROUNDS: usize = 500;

struct State<'a> {
    section: &'a str,
    /// Paths taken out or replaced after a reported problem: the follow-up errors they
    /// cause (a required field now missing) are not reported again.
    quiet: Vec<String>,
    stand_ins: Vec<String>,
    attempts: HashMap<String, usize>,
    /// Sequence elements taken out, by the sequence's path, as indices of the file.
    removed: HashMap<String, Vec<usize>>,
    issues: Vec<(String, String)>,
}

/// The steps of an error's path, up to the value holding an enum's content (a problem
/// inside an enum's variant is that value's problem).
fn steps(p: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    use serde_path_to_error::Segment;
    let mut out = Vec::new();
    for s in p.iter() {
        match s {
            Segment::Seq { index } => out.push(Step::Index(*index)),
            Segment::Map { key } => out.push(Step::Key(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => break,
        }
    }
    Some(out)
}

fn key_matches(k: &Value, key: &str) -> bool {
    match k {
        Value::String(s) => s == key,
        Value::Number(n) => n.to_string() == key,
        Value::Bool(b) => b.to_string() == key,
        _ => false,
    }
}

fn find_key(map: &Mapping, key: &str) -> Option<Value> {
    map.keys().find(|k| key_matches(k, key)).cloned()
}

fn get_mut<'v>(root: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    let mut v = root;
    for s in steps {
        v = match (s, v) {
            (Step::Key(k), Value::Mapping(m)) => {
                let key = find_key(m, k)?;
                m.get_mut(&key)?
            }
            (Step::Index(i), Value::Sequence(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Takes the value at `steps` out of its mapping or sequence.
fn remove(root: &mut Value, steps: &[Step]) -> bool {
    let Some((last, parent)) = steps.split_last() else {
        return false;
    };
    match (last, get_mut(root, parent)) {
        (Step::Key(k), Some(Value::Mapping(m))) => match find_key(m, k) {
            Some(key) => m.remove(&key).is_some(),
            None => false,
        },
        (Step::Index(i), Some(Value::Sequence(items))) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

/// Puts `value` at `steps`, adding the key to its mapping when absent.
fn set(root: &mut Value, steps: &[Step], value: Value) -> bool {
    let Some((last, parent)) = steps.split_last() else {
        *root = value;
        return true;
    };
    match (last, get_mut(root, parent)) {
        (Step::Key(k), Some(Value::Mapping(m))) => {
            let key = find_key(m, k).unwrap_or_else(|| Value::String(k.clone()));
            m.insert(key, value);
            true
        }
        (Step::Index(i), Some(Value::Sequence(items))) if *i < items.len() => {
            items[*i] = value;
            true
        }
        _ => false,
    }
}

pub(super) fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// A serde message without the value it quotes (`invalid type: integer `123456`,
/// expected a string`), for keys that hold secrets.
fn without_value(msg: &str) -> String {
    let expected = msg
        .split_once(", expected ")
        .map(|(_, e)| format!(", expected {e}"))
        .unwrap_or_default();
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let kind = rest
            .split(['`', '"', ','])
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let hint = if ["integer", "floating point", "boolean"].contains(&kind.as_str()) {
            "; write the value in quotes"
        } else {
            ""
        };
        return format!("invalid type: {kind}{expected}{hint} (the value is not shown)");
    }
    format!("invalid value{expected} (the value is not shown)")
}

impl State<'_> {
    /// The path of `steps` as written in the file (`section.a.b[2]`).
    fn path(&self, steps: &[Step]) -> String {
        let mut p = self.section.to_string();
        for s in steps {
            match s {
                Step::Key(k) => {
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                }
                Step::Index(current) => {
                    let gone = self.removed.get(&p);
                    let mut i = 0;
                    let mut kept = 0;
                    loop {
                        if !gone.is_some_and(|g| g.contains(&i)) {
                            if kept == *current {
                                break;
                            }
                            kept += 1;
                        }
                        i += 1;
                    }
                    p.push_str(&format!("[{i}]"));
                }
            }
        }
        p
    }

    fn is_quiet(&self, path: &str) -> bool {
        self.quiet
            .iter()
            .chain(&self.stand_ins)
            .any(|q| under(path, q))
    }

    fn report(&mut self, path: String, msg: String) {
        let msg = if is_secret_path(&path) {
            without_value(&msg)
        } else {
            msg
        };
        self.issues.push((path, msg));
    }

    /// Takes a sequence element out, remembering its index in the file.
    fn remove_element(&mut self, root: &mut Value, steps: &[Step]) -> bool {
        let Some((Step::Index(current), parent)) = steps.split_last() else {
            return false;
        };
        let original = self.path(steps);
        let seq = self.path(parent);
        let index = original
            .rsplit_once('[')
            .and_then(|(_, i)| i.trim_end_matches(']').parse::<usize>().ok())
            .unwrap_or(*current);
        if !remove(root, steps) {
            return false;
        }
        self.removed.entry(seq).or_default().push(index);
        self.quiet.push(original);
        true
    }

    /// Puts the next stand-in at `steps`: an empty string, zero, false, an empty mapping,
    /// an empty list, or (in a list) a copy of a sibling. When none types, the closest
    /// enclosing list element is taken out. `false` when nothing more can be done.
    fn stand_in(&mut self, root: &mut Value, steps: &[Step]) -> bool {
        let path = self.path(steps);
        let attempt = {
            let a = self.attempts.entry(path.clone()).or_insert(0);
            *a += 1;
            *a - 1
        };
        let mut candidates = vec![
            Value::String(String::new()),
            Value::Number(0.into()),
            Value::Bool(false),
            Value::Mapping(Mapping::new()),
            Value::Sequence(Vec::new()),
        ];
        if let Some((Step::Index(i), parent)) = steps.split_last() {
            if let Some(Value::Sequence(items)) = get_mut(root, parent) {
                candidates.extend(
                    items
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| j != i)
                        .map(|(_, v)| v.clone()),
                );
            }
        }
        if let Some(v) = candidates.into_iter().nth(attempt) {
            if !self.stand_ins.contains(&path) {
                self.stand_ins.push(path);
            }
            return set(root, steps, v);
        }
        // Nothing types here: drop the closest list element holding it.
        match steps.iter().rposition(|s| matches!(s, Step::Index(_))) {
            Some(k) => self.remove_element(root, &steps[..=k]),
            None => false,
        }
    }

    /// Handles one error; `false` when the section cannot be typed.
    fn fix(
        &mut self,
        root: &mut Value,
        err: serde_path_to_error::Error<serde_yaml::Error>,
    ) -> bool {
        let steps = steps(err.path());
        let msg = err.into_inner().to_string();
        let Some(steps) = steps else {
            let path = self.section.to_string();
            if !self.is_quiet(&path) {
                self.report(path, msg);
            }
            return false;
        };
        if let Some(field) = msg
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_string)
        {
            let parent: &[Step] = match steps.last() {
                Some(Step::Key(k)) if *k == field => &steps[..steps.len() - 1],
                _ => &steps,
            };
            let mut field_steps = parent.to_vec();
            field_steps.push(Step::Key(field));
            let path = self.path(&field_steps);
            self.report(path, msg);
            return remove(root, &field_steps);
        }
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_string)
        {
            let mut field_steps = steps.clone();
            field_steps.push(Step::Key(field));
            let field_path = self.path(&field_steps);
            if !self.is_quiet(&field_path) {
                let at = self.path(&steps);
                self.report(at, msg);
            }
            return self.stand_in(root, &field_steps);
        }
        let path = self.path(&steps);
        if self.stand_ins.contains(&path) {
            // A stand-in of the wrong type: try the next one.
            return self.stand_in(root, &steps);
        }
        if !self.is_quiet(&path) {
            self.report(path.clone(), msg);
        }
        match steps.last() {
            None => {
                if root.is_mapping() {
                    false
                } else {
                    self.quiet.push(path);
                    *root = Value::Mapping(Mapping::new());
                    true
                }
            }
            Some(Step::Index(_)) => self.stand_in(root, &steps),
            Some(Step::Key(_)) => {
                self.quiet.push(path);
                remove(root, &steps) || self.stand_in(root, &steps)
            }
        }
    }
}

/// Types `value` as the section `section`, reporting every problem found.
pub(super) fn deserialize<T: DeserializeOwned>(section: &str, mut value: Value) -> Typed<T> {
    let mut state = State {
        section,
        quiet: Vec::new(),
        stand_ins: Vec::new(),
        attempts: HashMap::new(),
        removed: HashMap::new(),
        issues: Vec::new(),
    };
    for _ in 0..MAX_ROUNDS {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => {
                return Typed {
                    value: Some(t),
                    issues: state.issues,
                    stand_ins: state.stand_ins,
                }
            }
            Err(e) => {
                if !state.fix(&mut value, e) {
                    break;
                }
            }
        }
    }
    Typed {
        value: None,
        issues: state.issues,
        stand_ins: state.stand_ins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        size: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Section {
        items: Vec<Item>,
        count: Option<u32>,
        days: Vec<chrono::NaiveDate>,
        password: Option<String>,
    }

    #[test]
    fn every_problem_of_a_section_is_found() {
        let v: Value = serde_yaml::from_str(
            "items:\n  - { name: a, size: x }\n  - { size: 2 }\n  - { name: c, size: 3, colour: red }\ncount: many\ndays: [2026-01-01, nope, 2026-02-30]\npassword: 123456\nextra: 1\n",
        )
        .unwrap();
        let t = deserialize::<Section>("s", v);
        assert!(t.value.is_some());
        let mut paths: Vec<&str> = t.issues.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "s.count",
                "s.days[1]",
                "s.days[2]",
                "s.extra",
                "s.items[0].size",
                "s.items[1]",
                "s.items[2].colour",
                "s.password"
            ],
            "{:?}",
            t.issues
        );
        assert_eq!(t.issues.len(), 8, "{:?}", t.issues);
        let pw = &t.issues.iter().find(|(p, _)| p == "s.password").unwrap().1;
        assert!(!pw.contains("123456"), "{pw}");
    }
}
