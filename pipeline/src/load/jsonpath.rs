//! The JSONPath subset of response validation: `$`, `.key`, `['key']` / `["key"]`, `[index]`
//! (negative counts from the end), `[*]` and `.*` (every element or member). A path selects
//! a list of nodes; no filters, slices or recursive descent.

use serde_json::Value;

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(i64),
    Wildcard,
}

impl JsonPath {
    /// Parses `text`; the error says what is wrong and at which character.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let b = text.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(format!("`{text}`: a path starts with `$`"));
        }
        let mut i = 1;
        let mut segments = Vec::new();
        while i < b.len() {
            match b[i] {
                b'.' => {
                    i += 1;
                    if b.get(i) == Some(&b'*') {
                        segments.push(Segment::Wildcard);
                        i += 1;
                        continue;
                    }
                    let start = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-' || b[i] >= 0x80) {
                        i += 1;
                    }
                    if i == start {
                        return Err(format!("`{text}`: expected a key after `.` at character {}", start + 1));
                    }
                    segments.push(Segment::Key(text[start..i].to_string()));
                }
                b'[' => {
                    i += 1;
                    match b.get(i) {
                        Some(&q @ (b'\'' | b'"')) => {
                            i += 1;
                            let mut key = String::new();
                            let mut closed = false;
                            let rest = &text[i..];
                            let mut chars = rest.char_indices();
                            while let Some((j, c)) = chars.next() {
                                if c == '\\' {
                                    if let Some((_, n)) = chars.next() {
                                        key.push(n);
                                    }
                                } else if c as u32 == u32::from(q) {
                                    i += j + 1;
                                    closed = true;
                                    break;
                                } else {
                                    key.push(c);
                                }
                            }
                            if !closed {
                                return Err(format!("`{text}`: unterminated quoted key"));
                            }
                            segments.push(Segment::Key(key));
                        }
                        Some(b'*') => {
                            i += 1;
                            segments.push(Segment::Wildcard);
                        }
                        _ => {
                            let start = i;
                            if b.get(i) == Some(&b'-') {
                                i += 1;
                            }
                            while i < b.len() && b[i].is_ascii_digit() {
                                i += 1;
                            }
                            let n = text[start..i].parse::<i64>().map_err(|_| {
                                format!("`{text}`: expected an index, `*` or a quoted key after `[` at character {}", start + 1)
                            })?;
                            segments.push(Segment::Index(n));
                        }
                    }
                    if b.get(i) != Some(&b']') {
                        return Err(format!("`{text}`: expected `]` at character {}", i + 1));
                    }
                    i += 1;
                }
                _ => return Err(format!("`{text}`: expected `.` or `[` at character {}", i + 1)),
            }
        }
        Ok(JsonPath { text: text.to_string(), segments })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The nodes the path selects in `root`, in document order.
    pub fn select<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![root];
        for s in &self.segments {
            let mut next = Vec::new();
            for v in cur {
                match (s, v) {
                    (Segment::Key(k), Value::Object(m)) => next.extend(m.get(k)),
                    (Segment::Index(n), Value::Array(a)) => {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        if idx >= 0 {
                            next.extend(a.get(idx as usize));
                        }
                    }
                    (Segment::Wildcard, Value::Array(a)) => next.extend(a.iter()),
                    (Segment::Wildcard, Value::Object(m)) => next.extend(m.values()),
                    _ => {}
                }
            }
            cur = next;
        }
        cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(path: &str, doc: &Value, want: &[Value]) {
        let p = JsonPath::parse(path).unwrap();
        let got: Vec<Value> = p.select(doc).into_iter().cloned().collect();
        assert_eq!(got, want, "{path}");
    }

    #[test]
    fn selects() {
        let doc = json!({"a": {"b": [1, 2, {"c": "x"}]}, "k e": true, "n": null});
        check("$", &doc, std::slice::from_ref(&doc));
        check("$.a.b[0]", &doc, &[json!(1)]);
        check("$.a.b[-1].c", &doc, &[json!("x")]);
        check("$['a'][\"b\"][1]", &doc, &[json!(2)]);
        check("$['k e']", &doc, &[json!(true)]);
        check("$.a.b[*]", &doc, &[json!(1), json!(2), json!({"c": "x"})]);
        check("$.n", &doc, &[Value::Null]);
        check("$.missing.x", &doc, &[]);
        check("$.a.b[7]", &doc, &[]);
        check("$.a.*", &doc, &[json!([1, 2, {"c": "x"}])]);
    }

    #[test]
    fn rejects() {
        for bad in ["", "a.b", "$.", "$[", "$[x]", "$['a'", "$[1", "$.a b", "$..a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
