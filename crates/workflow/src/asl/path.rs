//! JSONPath as Amazon States Language uses it.
//!
//! A path starts with `$` (the state's input) or `$$` (the context object). A *reference
//! path* names one node with `.name`, `['name']` and `[index]` steps; it is what
//! `ResultPath` and the `...Path` fields of Wait, Task, Map and Choice take. The fields that
//! select data (`InputPath`, `OutputPath`, `ItemsPath`, `.$` keys, Choice variables) also
//! take Jayway's extensions, as Step Functions does: `*` and `[*]`, `..` (deep scan),
//! unions `['a','b']` and `[0,1]`, slices `[1:3]` and filters `[?(@.price < 10 && @.x)]`.
//!
//! Selecting with a reference (definite) path gives the node or nothing; selecting with any
//! other path gives an array of every node matched, possibly empty (Jayway's rule).

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    text: String,
    root: Root,
    segments: Vec<Segment>,
}

/// What a path starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `$`: the state's input (or the value being processed).
    Input,
    /// `$$`: the context object.
    Context,
}

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    /// `..`: the selector applies to the node and every node below it.
    deep: bool,
    selector: Selector,
}

#[derive(Debug, Clone, PartialEq)]
enum Selector {
    Name(String),
    Index(i64),
    Wildcard,
    Names(Vec<String>),
    Indices(Vec<i64>),
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        step: i64,
    },
    Filter(Filter),
}

/// A filter `[?(...)]`: tests joined by `&&`, those groups joined by `||`.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    any: Vec<Vec<Test>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    /// `@.a`: the node has `a`.
    Exists(Vec<Segment>),
    Compare(Operand, CompareOp, Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `@`, `@.a.b`, `@['x'][0]`.
    Current(Vec<Segment>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Path {
    /// Parses a path; the error says what is wrong with it (without the path itself).
    pub fn parse(text: &str) -> Result<Path, String> {
        let chars: Vec<char> = text.chars().collect();
        if chars.first() != Some(&'$') {
            return Err("a path must start with '$'".to_string());
        }
        let (root, start) = if chars.get(1) == Some(&'$') {
            (Root::Context, 2)
        } else {
            (Root::Input, 1)
        };
        let segments = parse_segments(&chars, start)?;
        Ok(Path {
            text: text.to_string(),
            root,
            segments,
        })
    }

    /// The path as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> Root {
        self.root
    }

    /// Whether the path names at most one node (only names and indexes, no deep scan).
    pub fn is_definite(&self) -> bool {
        definite(&self.segments)
    }

    /// Whether this is a reference path over the input: definite and starting at `$`.
    pub fn is_reference(&self) -> bool {
        self.root == Root::Input && self.is_definite()
    }

    /// What the path selects: for a definite path the node, or `None` when there is none;
    /// for any other path an array of the nodes matched (never `None`).
    pub fn select(&self, input: &Value, context: &Value) -> Option<Value> {
        let root = match self.root {
            Root::Input => input,
            Root::Context => context,
        };
        let nodes = select_nodes(&self.segments, root);
        if self.is_definite() {
            nodes.first().map(|node| (*node).clone())
        } else {
            Some(Value::Array(nodes.into_iter().cloned().collect()))
        }
    }

    /// Places `value` at this reference path inside `target`, creating the objects the
    /// path names that are missing. `$` replaces `target`. Fails (with the reason) when a
    /// step meets something that is not an object (a name) or an array holding that index.
    pub fn set(&self, mut target: Value, value: Value) -> Result<Value, String> {
        if !self.is_reference() {
            return Err(format!("'{}' is not a reference path", self.text));
        }
        let Some((last, steps)) = self.segments.split_last() else {
            return Ok(value);
        };
        {
            let mut node = &mut target;
            for segment in steps {
                node = match &segment.selector {
                    Selector::Name(name) => match node {
                        Value::Object(object) => object
                            .entry(name.clone())
                            .or_insert_with(|| Value::Object(Map::new())),
                        other => return Err(not_object(name, other)),
                    },
                    Selector::Index(index) => match node {
                        Value::Array(items) => {
                            let at = resolve_index(*index, items.len())
                                .ok_or_else(|| format!("there is no item {index}"))?;
                            &mut items[at]
                        }
                        other => return Err(not_array(*index, other)),
                    },
                    _ => return Err(format!("'{}' is not a reference path", self.text)),
                };
            }
            match &last.selector {
                Selector::Name(name) => match node {
                    Value::Object(object) => {
                        object.insert(name.clone(), value);
                    }
                    other => return Err(not_object(name, other)),
                },
                Selector::Index(index) => match node {
                    Value::Array(items) => {
                        let at = resolve_index(*index, items.len())
                            .ok_or_else(|| format!("there is no item {index}"))?;
                        items[at] = value;
                    }
                    other => return Err(not_array(*index, other)),
                },
                _ => return Err(format!("'{}' is not a reference path", self.text)),
            }
        }
        Ok(target)
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn not_object(name: &str, found: &Value) -> String {
    format!(
        "'{name}' can't be set in {}, which is not an object",
        kind(found)
    )
}

fn not_array(index: i64, found: &Value) -> String {
    format!(
        "item {index} can't be set in {}, which is not an array",
        kind(found)
    )
}

/// A JSON type's name, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn definite(segments: &[Segment]) -> bool {
    segments.iter().all(|segment| {
        !segment.deep && matches!(segment.selector, Selector::Name(_) | Selector::Index(_))
    })
}

fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let at = if index < 0 { len + index } else { index };
    if (0..len).contains(&at) {
        usize::try_from(at).ok()
    } else {
        None
    }
}

// ---- selecting ----

fn select_nodes<'v>(segments: &[Segment], root: &'v Value) -> Vec<&'v Value> {
    let mut current = vec![root];
    for segment in segments {
        let mut next = Vec::new();
        for node in current {
            if segment.deep {
                let mut all = Vec::new();
                descendants(node, &mut all);
                for each in all {
                    apply(&segment.selector, each, true, &mut next);
                }
            } else {
                apply(&segment.selector, node, false, &mut next);
            }
        }
        current = next;
    }
    current
}

/// The node and every node below it, parents first.
fn descendants<'v>(node: &'v Value, out: &mut Vec<&'v Value>) {
    out.push(node);
    match node {
        Value::Object(object) => object.values().for_each(|child| descendants(child, out)),
        Value::Array(items) => items.iter().for_each(|child| descendants(child, out)),
        _ => {}
    }
}

fn apply<'v>(selector: &Selector, node: &'v Value, deep: bool, out: &mut Vec<&'v Value>) {
    match selector {
        Selector::Name(name) => out.extend(node.as_object().and_then(|o| o.get(name))),
        Selector::Index(index) => out.extend(item(node, *index)),
        Selector::Wildcard => match node {
            Value::Object(object) => out.extend(object.values()),
            Value::Array(items) => out.extend(items.iter()),
            _ => {}
        },
        Selector::Names(names) => {
            if let Some(object) = node.as_object() {
                out.extend(names.iter().filter_map(|name| object.get(name)));
            }
        }
        Selector::Indices(indices) => out.extend(indices.iter().filter_map(|i| item(node, *i))),
        Selector::Slice { start, end, step } => {
            if let Value::Array(items) = node {
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let clamp = |bound: i64| {
                    if bound < 0 {
                        (len + bound).max(0)
                    } else {
                        bound.min(len)
                    }
                };
                let from = clamp(start.unwrap_or(0));
                let to = clamp(end.unwrap_or(len));
                let mut at = from;
                while at < to {
                    if let Some(value) = usize::try_from(at).ok().and_then(|i| items.get(i)) {
                        out.push(value);
                    }
                    at = at.saturating_add(*step);
                }
            }
        }
        Selector::Filter(filter) => match node {
            Value::Array(items) => out.extend(items.iter().filter(|each| filter.accepts(each))),
            // Jayway applies a filter on an object to the object itself; under a deep scan
            // the objects are reached as array items already.
            Value::Object(_) if !deep && filter.accepts(node) => out.push(node),
            _ => {}
        },
    }
}

fn item(node: &Value, index: i64) -> Option<&Value> {
    let items = node.as_array()?;
    items.get(resolve_index(index, items.len())?)
}

impl Filter {
    fn accepts(&self, node: &Value) -> bool {
        self.any
            .iter()
            .any(|all| all.iter().all(|test| test.accepts(node)))
    }
}

impl Test {
    fn accepts(&self, node: &Value) -> bool {
        match self {
            Test::Exists(segments) => !select_nodes(segments, node).is_empty(),
            Test::Compare(left, op, right) => {
                let (Some(left), Some(right)) = (left.value(node), right.value(node)) else {
                    return false;
                };
                match op {
                    CompareOp::Eq => json_equal(left, right),
                    CompareOp::Ne => !json_equal(left, right),
                    CompareOp::Lt => order(left, right) == Some(Ordering::Less),
                    CompareOp::Le => {
                        matches!(order(left, right), Some(Ordering::Less | Ordering::Equal))
                    }
                    CompareOp::Gt => order(left, right) == Some(Ordering::Greater),
                    CompareOp::Ge => matches!(
                        order(left, right),
                        Some(Ordering::Greater | Ordering::Equal)
                    ),
                }
            }
        }
    }
}

impl Operand {
    fn value<'v>(&'v self, node: &'v Value) -> Option<&'v Value> {
        match self {
            Operand::Current(segments) => select_nodes(segments, node).first().copied(),
            Operand::Literal(value) => Some(value),
        }
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, a)| y.get(key).is_some_and(|b| json_equal(a, b)))
        }
        _ => a == b,
    }
}

/// Numbers by value, exactly when both are integers; strings by UTF-16 code units (as
/// Step Functions, a Java service, compares them); anything else has no order.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => Some(compare_strings(x, y)),
        _ => None,
    }
}

pub(crate) fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

pub(crate) fn compare_strings(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

// ---- parsing ----

fn parse_segments(chars: &[char], mut at: usize) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    while at < chars.len() {
        match chars[at] {
            '.' => {
                at += 1;
                let deep = chars.get(at) == Some(&'.');
                if deep {
                    at += 1;
                }
                match chars.get(at) {
                    None => return Err("a path must not end with '.'".to_string()),
                    Some('[') if deep => {
                        let (selector, after) = parse_bracket(chars, at)?;
                        segments.push(Segment { deep, selector });
                        at = after;
                    }
                    Some('[') => return Err("'.[' is not allowed in a path".to_string()),
                    Some('*') => {
                        segments.push(Segment {
                            deep,
                            selector: Selector::Wildcard,
                        });
                        at += 1;
                    }
                    Some(_) => {
                        let start = at;
                        while at < chars.len() && !matches!(chars[at], '.' | '[') {
                            if matches!(chars[at], ']' | '\'' | '"' | '(' | ')' | ',')
                                || chars[at].is_whitespace()
                            {
                                return Err(format!(
                                    "'{}' is not allowed in a field name; use ['...']",
                                    chars[at]
                                ));
                            }
                            at += 1;
                        }
                        let name: String = chars[start..at].iter().collect();
                        segments.push(Segment {
                            deep,
                            selector: Selector::Name(name),
                        });
                    }
                }
            }
            '[' => {
                let (selector, after) = parse_bracket(chars, at)?;
                segments.push(Segment {
                    deep: false,
                    selector,
                });
                at = after;
            }
            other => return Err(format!("unexpected '{other}' in a path")),
        }
    }
    Ok(segments)
}

/// Parses `[...]` at `at` (the `[`); returns the selector and the index after the `]`.
fn parse_bracket(chars: &[char], at: usize) -> Result<(Selector, usize), String> {
    let mut at = skip_spaces(chars, at + 1);
    match chars.get(at) {
        None => Err("'[' is not closed".to_string()),
        Some('*') => {
            at = skip_spaces(chars, at + 1);
            expect(chars, at, ']')?;
            Ok((Selector::Wildcard, at + 1))
        }
        Some('?') => {
            at += 1;
            expect(chars, at, '(')?;
            let close = closing_paren(chars, at)?;
            let filter = parse_filter(&chars[at + 1..close])?;
            let after = skip_spaces(chars, close + 1);
            expect(chars, after, ']')?;
            Ok((Selector::Filter(filter), after + 1))
        }
        Some('\'' | '"') => {
            let mut names = Vec::new();
            loop {
                let (name, after) = parse_quoted(chars, at)?;
                names.push(name);
                at = skip_spaces(chars, after);
                match chars.get(at) {
                    Some(']') => break,
                    Some(',') => at = skip_spaces(chars, at + 1),
                    _ => return Err("expected ',' or ']' after a quoted name".to_string()),
                }
            }
            let selector = if names.len() == 1 {
                Selector::Name(names.remove(0))
            } else {
                Selector::Names(names)
            };
            Ok((selector, at + 1))
        }
        Some(_) => {
            let close = chars[at..]
                .iter()
                .position(|c| *c == ']')
                .map(|offset| at + offset)
                .ok_or_else(|| "'[' is not closed".to_string())?;
            let body: String = chars[at..close].iter().collect();
            Ok((parse_indices(body.trim())?, close + 1))
        }
    }
}

fn parse_indices(body: &str) -> Result<Selector, String> {
    let integer = |text: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| format!("'{}' is not an index", text.trim()))
    };
    if body.contains(':') {
        let parts: Vec<&str> = body.split(':').collect();
        if parts.len() > 3 {
            return Err(format!("'[{body}]' is not a slice"));
        }
        let bound = |text: &str| -> Result<Option<i64>, String> {
            if text.trim().is_empty() {
                Ok(None)
            } else {
                integer(text).map(Some)
            }
        };
        let step = match parts.get(2) {
            Some(text) => bound(text)?.unwrap_or(1),
            None => 1,
        };
        if step <= 0 {
            return Err("a slice's step must be positive".to_string());
        }
        return Ok(Selector::Slice {
            start: bound(parts[0])?,
            end: bound(parts[1])?,
            step,
        });
    }
    let mut indices = body
        .split(',')
        .map(integer)
        .collect::<Result<Vec<_>, _>>()?;
    if indices.len() == 1 {
        Ok(Selector::Index(indices.remove(0)))
    } else {
        Ok(Selector::Indices(indices))
    }
}

/// A quoted name at `at` (its opening quote); returns it and the index after the quote.
fn parse_quoted(chars: &[char], at: usize) -> Result<(String, usize), String> {
    let quote = chars[at];
    let mut out = String::new();
    let mut i = at + 1;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' => {
                let escaped = chars
                    .get(i + 1)
                    .ok_or_else(|| "a quoted name is not closed".to_string())?;
                out.push(*escaped);
                i += 2;
            }
            c if c == quote => return Ok((out, i + 1)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err("a quoted name is not closed".to_string())
}

fn skip_spaces(chars: &[char], mut at: usize) -> usize {
    while chars.get(at).is_some_and(|c| c.is_whitespace()) {
        at += 1;
    }
    at
}

fn expect(chars: &[char], at: usize, wanted: char) -> Result<(), String> {
    match chars.get(at) {
        Some(c) if *c == wanted => Ok(()),
        Some(c) => Err(format!("expected '{wanted}', found '{c}'")),
        None => Err(format!("expected '{wanted}' at the end")),
    }
}

/// The index of the `)` closing the `(` at `open`, skipping quoted text.
fn closing_paren(chars: &[char], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = open;
    while let Some(&c) = chars.get(i) {
        match (quote, c) {
            (Some(_), '\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            (None, _) => {}
        }
        i += 1;
    }
    Err("a filter's '(' is not closed".to_string())
}

/// Tokens of a filter expression.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Operand(Operand),
    Op(CompareOp),
    And,
    Or,
}

fn parse_filter(body: &[char]) -> Result<Filter, String> {
    let tokens = tokenize_filter(body)?;
    let mut any = Vec::new();
    for group in tokens.split(|token| *token == Token::Or) {
        let mut all = Vec::new();
        for test in group.split(|token| *token == Token::And) {
            all.push(match test {
                [Token::Operand(Operand::Current(segments))] => Test::Exists(segments.clone()),
                [Token::Operand(left), Token::Op(op), Token::Operand(right)] => {
                    Test::Compare(left.clone(), *op, right.clone())
                }
                _ => {
                    return Err(
                        "a filter test must be '@.path' or '<operand> <op> <operand>'".to_string(),
                    );
                }
            });
        }
        any.push(all);
    }
    Ok(Filter { any })
}

fn tokenize_filter(body: &[char]) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let c = body[at];
        let pair = |second: char| body.get(at + 1) == Some(&second);
        if c.is_whitespace() {
            at += 1;
        } else if c == '@' {
            let start = at;
            at += 1;
            let mut depth = 0usize;
            let mut quote: Option<char> = None;
            while let Some(&c) = body.get(at) {
                match (quote, c) {
                    (Some(_), '\\') => at += 1,
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"') => quote = Some(c),
                    (None, '[') => depth += 1,
                    (None, ']') => depth = depth.saturating_sub(1),
                    (None, c) if depth == 0 && (c.is_whitespace() || "=!<>&|()".contains(c)) => {
                        break;
                    }
                    (None, _) => {}
                }
                at += 1;
            }
            let segments = parse_segments(&body[..at.min(body.len())], start + 1)?;
            if !definite(&segments) {
                return Err("a filter's '@' path must be a reference path".to_string());
            }
            tokens.push(Token::Operand(Operand::Current(segments)));
        } else if c == '\'' || c == '"' {
            let (text, after) = parse_quoted(body, at)?;
            tokens.push(Token::Operand(Operand::Literal(Value::String(text))));
            at = after;
        } else if c == '=' && pair('=') {
            tokens.push(Token::Op(CompareOp::Eq));
            at += 2;
        } else if c == '!' && pair('=') {
            tokens.push(Token::Op(CompareOp::Ne));
            at += 2;
        } else if c == '<' || c == '>' {
            let op = match (c, pair('=')) {
                ('<', true) => CompareOp::Le,
                ('<', false) => CompareOp::Lt,
                ('>', true) => CompareOp::Ge,
                _ => CompareOp::Gt,
            };
            tokens.push(Token::Op(op));
            at += if pair('=') { 2 } else { 1 };
        } else if c == '&' && pair('&') {
            tokens.push(Token::And);
            at += 2;
        } else if c == '|' && pair('|') {
            tokens.push(Token::Or);
            at += 2;
        } else {
            let start = at;
            while body
                .get(at)
                .is_some_and(|c| c.is_alphanumeric() || "+-.".contains(*c))
            {
                at += 1;
            }
            let word: String = body[start..at].iter().collect();
            let literal = match word.as_str() {
                "" => return Err(format!("unexpected '{c}' in a filter")),
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                number => serde_json::from_str::<serde_json::Number>(number)
                    .map(Value::Number)
                    .map_err(|_| format!("'{number}' is not a value in a filter"))?,
            };
            tokens.push(Token::Operand(Operand::Literal(literal)));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(path: &str, input: &Value) -> Option<Value> {
        Path::parse(path).unwrap().select(input, &json!({"ctx": 1}))
    }

    #[test]
    fn reference_paths_select_one_node() {
        let input = json!({"a": {"b": [10, 20, {"c": "x"}]}, "x y": 1, "it's": 2});
        assert_eq!(select("$", &input), Some(input.clone()));
        assert_eq!(select("$.a.b[1]", &input), Some(json!(20)));
        assert_eq!(select("$.a.b[-1].c", &input), Some(json!("x")));
        assert_eq!(select("$['x y']", &input), Some(json!(1)));
        assert_eq!(select("$[\"x y\"]", &input), Some(json!(1)));
        assert_eq!(select("$['it\\'s']", &input), Some(json!(2)));
        assert_eq!(select("$['a']['b'][0]", &input), Some(json!(10)));
        assert_eq!(select("$.missing", &input), None);
        assert_eq!(select("$.a.b[7]", &input), None);
        assert_eq!(select("$.a.b.c", &input), None);
        assert_eq!(select("$$.ctx", &input), Some(json!(1)));
        assert!(Path::parse("$.a.b[0]").unwrap().is_reference());
        assert!(!Path::parse("$$.a").unwrap().is_reference());
    }

    #[test]
    fn other_paths_select_arrays() {
        let input = json!({"items": [{"b": 1, "p": 5}, {"b": 2, "p": 15}, {"p": 25}], "o": {"x": 1, "y": 2}});
        assert_eq!(select("$.items[*].b", &input), Some(json!([1, 2])));
        assert_eq!(select("$.items.*.p", &input), Some(json!([5, 15, 25])));
        assert_eq!(select("$.o[*]", &input), Some(json!([1, 2])));
        assert_eq!(select("$.o['x','y']", &input), Some(json!([1, 2])));
        assert_eq!(select("$.items[0,2].p", &input), Some(json!([5, 25])));
        assert_eq!(select("$.items[1:].p", &input), Some(json!([15, 25])));
        assert_eq!(select("$.items[:-1].p", &input), Some(json!([5, 15])));
        assert_eq!(select("$.items[0:3:2].p", &input), Some(json!([5, 25])));
        assert_eq!(
            select("$.items[0::9223372036854775807].p", &input),
            Some(json!([5]))
        );
        assert_eq!(select("$..b", &input), Some(json!([1, 2])));
        assert_eq!(select("$..x", &input), Some(json!([1])));
        assert_eq!(
            select("$.items[?(@.p > 10)].p", &input),
            Some(json!([15, 25]))
        );
        assert_eq!(select("$.items[?(@.b)].p", &input), Some(json!([5, 15])));
        assert_eq!(
            select("$.items[?(@.p >= 15 && @.b == 2)].p", &input),
            Some(json!([15]))
        );
        assert_eq!(
            select("$.items[?(@.b == 1 || @.p == 25)].p", &input),
            Some(json!([5, 25]))
        );
        assert_eq!(select("$.missing[*]", &input), Some(json!([])));
        assert!(!Path::parse("$.items[*]").unwrap().is_definite());
    }

    #[test]
    fn filters_compare_strings_and_literals() {
        let input = json!([{"n": "a"}, {"n": "b"}, {"n": null}, {"n": true}]);
        assert_eq!(
            select("$[?(@.n == 'b')]", &input),
            Some(json!([{"n": "b"}]))
        );
        assert_eq!(
            select("$[?(@.n != \"b\")].n", &input),
            Some(json!(["a", null, true]))
        );
        assert_eq!(select("$[?(@.n < 'b')].n", &input), Some(json!(["a"])));
        assert_eq!(select("$[?(@.n == null)].n", &input), Some(json!([null])));
        assert_eq!(select("$[?(@.n == true)].n", &input), Some(json!([true])));
        assert_eq!(select("$[?(@ == 1.0)]", &json!([1, 2])), Some(json!([1])));
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in [
            "",
            "a",
            ".a",
            "$.",
            "$.a.",
            "$[",
            "$[0",
            "$['a",
            "$.[0]",
            "$a",
            "$.a b",
            "$[x]",
            "$[1:2:0]",
            "$[?(@.a >)]",
            "$[?(@.a == 1]",
            "$[?(@..a)]",
            "$[1:2:3:4]",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn set_creates_objects_and_refuses_non_objects() {
        let set = |path: &str, target: Value| Path::parse(path).unwrap().set(target, json!(9));
        assert_eq!(set("$", json!({"a": 1})), Ok(json!(9)));
        assert_eq!(set("$.a", json!({"a": 1})), Ok(json!({"a": 9})));
        assert_eq!(
            set("$.b.c", json!({"a": 1})),
            Ok(json!({"a": 1, "b": {"c": 9}}))
        );
        assert_eq!(
            set("$.a[1]", json!({"a": [1, 2]})),
            Ok(json!({"a": [1, 9]}))
        );
        assert_eq!(set("$['x y'].z", json!({})), Ok(json!({"x y": {"z": 9}})));
        assert!(set("$.a.b", json!({"a": "text"})).is_err());
        assert!(set("$.a", json!("text")).is_err());
        assert!(set("$.a[5]", json!({"a": [1]})).is_err());
        assert!(set("$.a[*]", json!({"a": [1]})).is_err());
    }
}
