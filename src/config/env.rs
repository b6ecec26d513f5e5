//! Environment interpolation, applied to the YAML tree before it is typed:
//! `${VAR}` (or `${VAR:-default}`) inside any string, `$${` for a literal `${`, and any
//! key `foo_env: VAR` that becomes `foo: <value of VAR>`.

use serde_yaml::{Mapping, Value};

use super::Issue;

pub fn interpolate(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    issues: &mut Vec<Issue>,
) {
    match value {
        Value::String(s) if s.contains('$') => match expand(s, lookup) {
            Ok(v) => *s = v,
            // A secret's text is never quoted, even in part.
            Err(m) if super::secret::is_secret_path(path) && !m.ends_with(" is not set") => {
                issues.push(Issue::error(
                    path,
                    "invalid ${...} reference in this secret (write $${ for a literal ${); the value is not shown",
                ))
            }
            Err(m) => issues.push(Issue::error(path, m)),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"), lookup, issues);
            }
        }
        Value::Mapping(map) => {
            let mut renamed = Mapping::new();
            let keys: Vec<Value> = map.keys().cloned().collect();
            for key in keys {
                let Some(k) = key.as_str().map(str::to_string) else {
                    continue;
                };
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some(base) = k.strip_suffix("_env") {
                    let Some(Value::String(var)) = map.remove(&key) else {
                        issues.push(Issue::error(
                            &child,
                            "expected the name of an environment variable",
                        ));
                        continue;
                    };
                    if map.contains_key(base) {
                        issues.push(Issue::error(
                            &child,
                            format!("both '{base}' and '{k}' are set; keep one"),
                        ));
                        continue;
                    }
                    match lookup(&var) {
                        Some(v) => {
                            renamed.insert(Value::String(base.to_string()), Value::String(v));
                        }
                        None => issues.push(Issue::error(
                            &child,
                            format!("environment variable {var} is not set"),
                        )),
                    }
                } else if let Some(v) = map.get_mut(&key) {
                    interpolate(v, &child, lookup, issues);
                }
            }
            for (k, v) in renamed {
                map.insert(k, v);
            }
        }
        _ => {}
    }
}

fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix("${") {
            let end = inner
                .find('}')
                .ok_or_else(|| "unterminated ${ (write $${ for a literal ${)".to_string())?;
            let expr = &inner[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid environment variable name '{name}'"));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PASS" => Some("s3cret".into()),
            "HOST" => Some("db".into()),
            _ => None,
        }
    }

    #[test]
    fn strings_and_env_keys_are_expanded() {
        let mut v: Value = serde_yaml::from_str(
            "a: postgres://u:${PASS}@${HOST}/x\nb: ${MISSING:-dflt}\nc: $${LITERAL} costs $5\nsmtp:\n  password_env: PASS\n",
        )
        .unwrap();
        let mut issues = vec![];
        interpolate(&mut v, "", &env, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(v["a"].as_str(), Some("postgres://u:s3cret@db/x"));
        assert_eq!(v["b"].as_str(), Some("dflt"));
        assert_eq!(v["c"].as_str(), Some("${LITERAL} costs $5"));
        assert_eq!(v["smtp"]["password"].as_str(), Some("s3cret"));
    }

    #[test]
    fn missing_variables_are_reported_with_their_path() {
        let mut v: Value =
            serde_yaml::from_str("x:\n  y: ${NOPE}\n  token_env: ALSO_NOPE\n").unwrap();
        let mut issues = vec![];
        interpolate(&mut v, "", &env, &mut issues);
        let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, vec!["x.y", "x.token_env"]);
    }
}
