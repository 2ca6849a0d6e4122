//! Intrinsic functions (`States.Format('{} x', $.a)` ...), parsed once from a `.$` value
//! and evaluated over an input and the context object.
//!
//! Arguments are `'quoted strings'` (escapes `\'`, `\{`, `\}`, `\\`), numbers, `true`,
//! `false`, `null`, paths (`$...`, `$$...`) and nested calls, at most 10 calls deep. Name
//! and argument count are checked when parsing; argument types and values when evaluating,
//! where every failure is `States.IntrinsicFailure`.

use super::StateError;
use super::path::{Path, json_equal, kind};
use base64::Engine as _;
use serde_json::{Number, Value};

/// How deep calls may nest (Step Functions' limit).
const MAX_DEPTH: usize = 10;
/// Most items `States.ArrayRange` makes.
const MAX_RANGE: i64 = 1000;
/// Longest string `States.Base64Encode`/`Decode` and `States.Hash` take.
const MAX_INPUT_CHARS: usize = 10_000;

/// A parsed intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsic {
    function: Function,
    args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A quoted string: `value` with escapes resolved, `raw` as written (for Format).
    Str {
        value: String,
        raw: String,
    },
    Literal(Value),
    Path(Path),
    Call(Intrinsic),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Function {
    const ALL: [(&'static str, Function); 18] = [
        ("Format", Function::Format),
        ("StringToJson", Function::StringToJson),
        ("JsonToString", Function::JsonToString),
        ("Array", Function::Array),
        ("ArrayPartition", Function::ArrayPartition),
        ("ArrayContains", Function::ArrayContains),
        ("ArrayRange", Function::ArrayRange),
        ("ArrayGetItem", Function::ArrayGetItem),
        ("ArrayLength", Function::ArrayLength),
        ("ArrayUnique", Function::ArrayUnique),
        ("Base64Encode", Function::Base64Encode),
        ("Base64Decode", Function::Base64Decode),
        ("Hash", Function::Hash),
        ("JsonMerge", Function::JsonMerge),
        ("MathRandom", Function::MathRandom),
        ("MathAdd", Function::MathAdd),
        ("StringSplit", Function::StringSplit),
        ("UUID", Function::Uuid),
    ];

    fn name(self) -> &'static str {
        Function::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(name, _)| name)
    }

    /// The least and the most arguments it takes.
    fn arity(self) -> (usize, usize) {
        match self {
            Function::Format => (1, usize::MAX),
            Function::Array => (0, usize::MAX),
            Function::Uuid => (0, 0),
            Function::StringToJson
            | Function::JsonToString
            | Function::ArrayLength
            | Function::ArrayUnique
            | Function::Base64Encode
            | Function::Base64Decode => (1, 1),
            Function::ArrayPartition
            | Function::ArrayContains
            | Function::ArrayGetItem
            | Function::Hash
            | Function::MathAdd
            | Function::StringSplit => (2, 2),
            Function::MathRandom => (2, 3),
            Function::ArrayRange | Function::JsonMerge => (3, 3),
        }
    }
}

impl Intrinsic {
    /// Whether a `.$` value is meant as an intrinsic call rather than a path.
    pub fn looks_like(text: &str) -> bool {
        text.starts_with("States.")
    }

    /// Parses a whole call; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Intrinsic, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut parser = Parser { chars, at: 0 };
        let call = parser.call(1)?;
        parser.skip_spaces();
        if parser.at < parser.chars.len() {
            return Err(format!(
                "unexpected text after the call: '{}'",
                parser.chars[parser.at..].iter().collect::<String>()
            ));
        }
        Ok(call)
    }

    /// Evaluates the call over `input` (`$`) and `context` (`$$`).
    pub fn eval(&self, input: &Value, context: &Value) -> Result<Value, StateError> {
        let name = self.function.name();
        let fail = |cause: String| StateError::intrinsic(format!("States.{name}: {cause}"));
        if self.function == Function::Format {
            return self.format(input, context).map(Value::String).map_err(fail);
        }
        let mut args = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            args.push(arg.eval(input, context)?);
        }
        call(self.function, args).map_err(fail)
    }

    fn format(&self, input: &Value, context: &Value) -> Result<String, String> {
        let mut args = self.args.iter();
        let template = match args.next() {
            Some(Arg::Str { raw, .. }) => raw.clone(),
            Some(other) => match other.eval(input, context).map_err(|e| e.cause)? {
                Value::String(text) => text,
                value => return Err(format!("the template is {}, not a string", kind(&value))),
            },
            None => return Err("a template is required".to_string()),
        };
        let mut values = Vec::new();
        for arg in args {
            values.push(arg.eval(input, context).map_err(|e| e.cause)?);
        }
        let mut out = String::new();
        let mut values = values.into_iter();
        let mut used = 0usize;
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '{' if chars.peek() == Some(&'}') => {
                    chars.next();
                    used += 1;
                    let value = values.next().ok_or_else(|| {
                        format!(
                            "the template has more placeholders than the {} values",
                            used - 1
                        )
                    })?;
                    display(&value, &mut out);
                }
                c => out.push(c),
            }
        }
        let left = values.count();
        if left > 0 {
            return Err(format!(
                "the template has {used} placeholders but {} values were given",
                used + left
            ));
        }
        Ok(out)
    }
}

impl Arg {
    fn eval(&self, input: &Value, context: &Value) -> Result<Value, StateError> {
        match self {
            Arg::Str { value, .. } => Ok(Value::String(value.clone())),
            Arg::Literal(value) => Ok(value.clone()),
            Arg::Path(path) => path.select(input, context).ok_or_else(|| {
                StateError::intrinsic(format!(
                    "the path '{path}' matched nothing in the {}",
                    match path.root() {
                        super::Root::Input => "input",
                        super::Root::Context => "context object",
                    }
                ))
            }),
            Arg::Call(call) => call.eval(input, context),
        }
    }
}

/// How Format shows a value, as Step Functions (a Java service) does: strings as they
/// are, objects as `{a=1, b=[x, y]}`, arrays as `[1, 2]`, other values as JSON.
fn display(value: &Value, out: &mut String) {
    match value {
        Value::String(text) => out.push_str(text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                display(item, out);
            }
            out.push(']');
        }
        Value::Object(object) => {
            out.push('{');
            for (i, (key, item)) in object.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                display(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Applies a function other than Format to evaluated arguments.
fn call(function: Function, args: Vec<Value>) -> Result<Value, String> {
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or(Value::Null);
    match function {
        Function::Format => Err("Format is evaluated apart".to_string()),
        Function::StringToJson => {
            let text = string(next(), "the argument")?;
            serde_json::from_str(&text).map_err(|e| format!("the string is not JSON: {e}"))
        }
        Function::JsonToString => Ok(Value::String(next().to_string())),
        Function::Array => Ok(Value::Array(std::iter::from_fn(|| args.next()).collect())),
        Function::ArrayPartition => {
            let items = array(next(), "the first argument")?;
            let size = integer(&next(), "the chunk size")?;
            let size = usize::try_from(size)
                .ok()
                .filter(|size| *size > 0)
                .ok_or_else(|| format!("the chunk size must be positive, not {size}"))?;
            Ok(Value::Array(
                items
                    .chunks(size)
                    .map(|chunk| Value::Array(chunk.to_vec()))
                    .collect(),
            ))
        }
        Function::ArrayContains => {
            let items = array(next(), "the first argument")?;
            let wanted = next();
            Ok(Value::Bool(
                items.iter().any(|item| json_equal(item, &wanted)),
            ))
        }
        Function::ArrayRange => {
            let start = integer(&next(), "the start")?;
            let end = integer(&next(), "the end")?;
            let step = integer(&next(), "the step")?;
            if step == 0 {
                return Err("the step must not be 0".to_string());
            }
            let span = i128::from(end) - i128::from(start);
            let count = if span.signum() * i128::from(step.signum()) < 0 {
                0
            } else {
                span / i128::from(step) + 1
            };
            if count > i128::from(MAX_RANGE) {
                return Err(format!(
                    "the range has {count} items; at most {MAX_RANGE} are allowed"
                ));
            }
            Ok(Value::Array(
                // Every value lies between start and end, so it fits an i64.
                (0..count)
                    .map(|i| {
                        let value = i128::from(start) + i * i128::from(step);
                        Value::from(i64::try_from(value).unwrap_or_default())
                    })
                    .collect(),
            ))
        }
        Function::ArrayGetItem => {
            let items = array(next(), "the first argument")?;
            let index = integer(&next(), "the index")?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i).cloned())
                .ok_or_else(|| {
                    format!(
                        "the index {index} is out of the array's bounds (0..{})",
                        items.len()
                    )
                })
        }
        Function::ArrayLength => Ok(Value::from(array(next(), "the argument")?.len())),
        Function::ArrayUnique => {
            let mut unique: Vec<Value> = Vec::new();
            for item in array(next(), "the argument")? {
                if !unique.iter().any(|seen| json_equal(seen, &item)) {
                    unique.push(item);
                }
            }
            Ok(Value::Array(unique))
        }
        Function::Base64Encode => {
            let text = limited(string(next(), "the argument")?)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(text),
            ))
        }
        Function::Base64Decode => {
            let text = limited(string(next(), "the argument")?)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("the string is not base64: {e}"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "the decoded bytes are not UTF-8 text".to_string())
        }
        Function::Hash => {
            let data = limited(string(next(), "the data")?)?;
            let algorithm = string(next(), "the algorithm")?;
            hash(&data, &algorithm).map(Value::String)
        }
        Function::JsonMerge => {
            let Value::Object(mut left) = next() else {
                return Err("the first argument must be an object".to_string());
            };
            let Value::Object(right) = next() else {
                return Err("the second argument must be an object".to_string());
            };
            match next() {
                Value::Bool(false) => {}
                Value::Bool(true) => {
                    return Err(
                        "deep merging is not supported: the third argument must be false"
                            .to_string(),
                    );
                }
                other => {
                    return Err(format!("the third argument is {}, not false", kind(&other)));
                }
            }
            left.extend(right);
            Ok(Value::Object(left))
        }
        Function::MathRandom => {
            let start = rounded(&next(), "the start")?;
            let end = rounded(&next(), "the end")?;
            let seed = match next() {
                Value::Null => None,
                seed => Some(rounded(&seed, "the seed")?),
            };
            if end < start {
                return Err(format!(
                    "the end ({end}) must not be less than the start ({start})"
                ));
            }
            let random = match seed {
                Some(seed) => splitmix64(seed as u64),
                None => random_u64(),
            };
            // Both ends included, as Step Functions draws.
            let span = u128::from(end.abs_diff(start)) + 1;
            let offset = u64::try_from(u128::from(random) % span).unwrap_or(0);
            Ok(Value::from(start.wrapping_add_unsigned(offset)))
        }
        Function::MathAdd => {
            let a = rounded(&next(), "the first argument")?;
            let b = rounded(&next(), "the second argument")?;
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| "the sum overflows".to_string())
        }
        Function::StringSplit => {
            let text = string(next(), "the first argument")?;
            let delimiters = string(next(), "the delimiter")?;
            Ok(Value::Array(
                text.split(|c| delimiters.contains(c))
                    .filter(|piece| !piece.is_empty())
                    .map(|piece| Value::String(piece.to_string()))
                    .collect(),
            ))
        }
        Function::Uuid => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
    }
}

fn string(value: Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(format!("{what} is {}, not a string", kind(&other))),
    }
}

fn array(value: Value, what: &str) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(format!("{what} is {}, not an array", kind(&other))),
    }
}

/// An integer: a JSON integer, or a number with no fraction (`2.0`).
fn integer(value: &Value, what: &str) -> Result<i64, String> {
    let not = || format!("{what} must be an integer, not {value}");
    let Value::Number(number) = value else {
        return Err(not());
    };
    if let Some(i) = number.as_i64() {
        return Ok(i);
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(not()),
    }
}

/// A number rounded to the nearest integer, halves up (Java's `Math.round`), as
/// MathAdd and MathRandom take their arguments.
fn rounded(value: &Value, what: &str) -> Result<i64, String> {
    let Value::Number(number) = value else {
        return Err(format!("{what} must be a number, not {value}"));
    };
    if let Some(i) = number.as_i64() {
        return Ok(i);
    }
    match number.as_f64().map(|f| (f + 0.5).floor()) {
        Some(f) if f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(format!("{what} is out of range: {value}")),
    }
}

fn limited(text: String) -> Result<String, String> {
    let chars = text.chars().count();
    if chars > MAX_INPUT_CHARS {
        Err(format!(
            "the string has {chars} characters; at most {MAX_INPUT_CHARS} are allowed"
        ))
    } else {
        Ok(text)
    }
}

fn hash(data: &str, algorithm: &str) -> Result<String, String> {
    use sha2::Digest as _;
    let bytes = data.as_bytes();
    Ok(match algorithm {
        "MD5" => {
            use md5::Digest as _;
            hex::encode(md5::Md5::digest(bytes).as_slice())
        }
        "SHA-1" => hex::encode(sha1::Sha1::digest(bytes)),
        "SHA-256" => hex::encode(sha2::Sha256::digest(bytes)),
        "SHA-384" => hex::encode(sha2::Sha384::digest(bytes)),
        "SHA-512" => hex::encode(sha2::Sha512::digest(bytes)),
        other => {
            return Err(format!(
                "unknown algorithm '{other}' (MD5, SHA-1, SHA-256, SHA-384 or SHA-512)"
            ));
        }
    })
}

/// A seeded draw: the same seed gives the same number.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An unseeded draw, from the operating system's generator behind UUID v4.
fn random_u64() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn call(&mut self, depth: usize) -> Result<Intrinsic, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "intrinsic functions may be nested at most {MAX_DEPTH} deep"
            ));
        }
        let rest: String = self.chars[self.at..].iter().collect();
        if !rest.starts_with("States.") {
            return Err("an intrinsic function starts with 'States.'".to_string());
        }
        self.at += "States.".len();
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.at += 1;
        }
        let name: String = self.chars[start..self.at].iter().collect();
        let function = Function::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("unknown intrinsic function 'States.{name}'"))?;
        self.skip_spaces();
        if self.peek() != Some('(') {
            return Err(format!("expected '(' after 'States.{name}'"));
        }
        self.at += 1;
        let mut args = Vec::new();
        self.skip_spaces();
        if self.peek() == Some(')') {
            self.at += 1;
        } else {
            loop {
                self.skip_spaces();
                args.push(self.arg(depth)?);
                self.skip_spaces();
                match self.peek() {
                    Some(',') => self.at += 1,
                    Some(')') => {
                        self.at += 1;
                        break;
                    }
                    Some(c) => {
                        return Err(format!(
                            "expected ',' or ')' in 'States.{name}', found '{c}'"
                        ));
                    }
                    None => return Err(format!("'States.{name}(' is not closed")),
                }
            }
        }
        let (least, most) = function.arity();
        if args.len() < least || args.len() > most {
            let wanted = if least == most {
                format!("{least}")
            } else if most == usize::MAX {
                format!("at least {least}")
            } else {
                format!("{least} to {most}")
            };
            return Err(format!(
                "States.{name} takes {wanted} arguments, not {}",
                args.len()
            ));
        }
        Ok(Intrinsic { function, args })
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, String> {
        match self.peek() {
            Some('\'') => self.string(),
            Some('$') => {
                let start = self.at;
                let mut brackets = 0usize;
                let mut quote: Option<char> = None;
                while let Some(c) = self.peek() {
                    match (quote, c) {
                        (Some(_), '\\') => self.at += 1,
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, '\'' | '"') => quote = Some(c),
                        (None, '[') => brackets += 1,
                        (None, ']') => brackets = brackets.saturating_sub(1),
                        (None, ',' | ')') if brackets == 0 => break,
                        (None, _) => {}
                    }
                    self.at += 1;
                }
                let end = self.at.min(self.chars.len());
                let text: String = self.chars[start..end].iter().collect();
                let text = text.trim_end();
                Path::parse(text)
                    .map(Arg::Path)
                    .map_err(|e| format!("bad path '{text}': {e}"))
            }
            Some('S') => self.call(depth + 1).map(Arg::Call),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || "+-.eE".contains(c))
                {
                    self.at += 1;
                }
                let text: String = self.chars[start..self.at].iter().collect();
                serde_json::from_str::<Number>(&text)
                    .map(|n| Arg::Literal(Value::Number(n)))
                    .map_err(|_| format!("'{text}' is not a number"))
            }
            Some(_) => {
                let start = self.at;
                while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    self.at += 1;
                }
                let word: String = self.chars[start..self.at].iter().collect();
                match word.as_str() {
                    "true" => Ok(Arg::Literal(Value::Bool(true))),
                    "false" => Ok(Arg::Literal(Value::Bool(false))),
                    "null" => Ok(Arg::Literal(Value::Null)),
                    _ => Err(format!(
                        "an argument must be a 'string', a number, true, false, null, a path or a call, not '{}'",
                        self.chars[start..].iter().take(20).collect::<String>()
                    )),
                }
            }
            None => Err("an argument is missing".to_string()),
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.at += 1;
        let mut value = String::new();
        let mut raw = String::new();
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                '\\' => {
                    let escaped = self
                        .peek()
                        .ok_or_else(|| "a quoted string is not closed".to_string())?;
                    if !"'{}\\".contains(escaped) {
                        return Err(format!(
                            "'\\{escaped}' is not an escape; only \\', \\{{, \\}} and \\\\ are"
                        ));
                    }
                    self.at += 1;
                    value.push(escaped);
                    raw.push('\\');
                    raw.push(escaped);
                }
                '\'' => return Ok(Arg::Str { value, raw }),
                c => {
                    value.push(c);
                    raw.push(c);
                }
            }
        }
        Err("a quoted string is not closed".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(text: &str) -> Result<Value, StateError> {
        let input = json!({
            "name": "Ann", "n": 3, "list": [1, 2, 2, "a", 1.0], "obj": {"a": 1, "b": {"c": 2}},
            "other": {"b": 9}, "text": "a,b;c", "json": "{\"k\":[1]}", "flag": true
        });
        let context = json!({"Execution": {"Id": "e-1"}});
        Intrinsic::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .eval(&input, &context)
    }

    fn fails(text: &str) -> String {
        let error = eval(text).expect_err(text);
        assert_eq!(error.error, "States.IntrinsicFailure", "{text}");
        error.cause
    }

    #[test]
    fn format() {
        assert_eq!(
            eval("States.Format('Hello {}', $.name)"),
            Ok(json!("Hello Ann"))
        );
        assert_eq!(
            eval("States.Format('{} {} {} {}', $.n, $.flag, null, $$.Execution.Id)"),
            Ok(json!("3 true null e-1"))
        );
        assert_eq!(
            eval(r"States.Format('\{\} it\'s {} \\', $.name)"),
            Ok(json!(r"{} it's Ann \"))
        );
        assert_eq!(eval("States.Format('none')"), Ok(json!("none")));
        assert_eq!(eval("States.Format('{}', 'a, b)')"), Ok(json!("a, b)")));
        assert!(fails("States.Format('{} {}', $.name)").contains("placeholders"));
        assert!(fails("States.Format('{}', $.name, $.n)").contains("placeholders"));
        assert_eq!(
            eval("States.Format('{} {}', $.obj, States.Array('x', 1, null))"),
            Ok(json!("{a=1, b={c=2}} [x, 1, null]"))
        );
        assert!(fails("States.Format('{}', $.missing)").contains("$.missing"));
    }

    #[test]
    fn json_conversions() {
        assert_eq!(eval("States.StringToJson($.json)"), Ok(json!({"k": [1]})));
        assert_eq!(
            eval("States.JsonToString($.obj)"),
            Ok(json!(r#"{"a":1,"b":{"c":2}}"#))
        );
        assert_eq!(
            eval("States.StringToJson(States.JsonToString($.obj))"),
            Ok(json!({"a": 1, "b": {"c": 2}}))
        );
        assert!(fails("States.StringToJson('{bad')").contains("not JSON"));
        assert!(fails("States.StringToJson($.n)").contains("not a string"));
    }

    #[test]
    fn arrays() {
        assert_eq!(eval("States.Array()"), Ok(json!([])));
        assert_eq!(
            eval("States.Array('a', 1, $.flag, null, $.obj.b)"),
            Ok(json!(["a", 1, true, null, {"c": 2}]))
        );
        assert_eq!(
            eval("States.ArrayPartition($.list, 2)"),
            Ok(json!([[1, 2], [2, "a"], [1.0]]))
        );
        assert!(fails("States.ArrayPartition($.list, 0)").contains("positive"));
        assert!(fails("States.ArrayPartition($.name, 2)").contains("not an array"));
        assert_eq!(eval("States.ArrayContains($.list, 'a')"), Ok(json!(true)));
        assert_eq!(eval("States.ArrayContains($.list, 5)"), Ok(json!(false)));
        assert_eq!(
            eval("States.ArrayRange(1, 9, 2)"),
            Ok(json!([1, 3, 5, 7, 9]))
        );
        assert_eq!(eval("States.ArrayRange(5, 1, -2)"), Ok(json!([5, 3, 1])));
        assert_eq!(eval("States.ArrayRange(1, 0, 1)"), Ok(json!([])));
        assert_eq!(
            eval(
                "States.ArrayRange(-9223372036854775808, 9223372036854775807, 4611686018427387904)"
            ),
            Ok(json!([
                -9223372036854775808_i64,
                -4611686018427387904_i64,
                0,
                4611686018427387904_i64
            ]))
        );
        assert_eq!(
            eval("States.ArrayLength(States.ArrayRange(1, 1000, 1))"),
            Ok(json!(1000))
        );
        assert!(fails("States.ArrayRange(1, 1001, 1)").contains("at most 1000"));
        assert!(fails("States.ArrayRange(1, 5, 0)").contains("0"));
        assert!(fails("States.ArrayRange(1.5, 5, 1)").contains("integer"));
        assert_eq!(eval("States.ArrayGetItem($.list, 3)"), Ok(json!("a")));
        assert!(fails("States.ArrayGetItem($.list, 5)").contains("bounds"));
        assert!(fails("States.ArrayGetItem($.list, -1)").contains("bounds"));
        assert_eq!(eval("States.ArrayLength($.list)"), Ok(json!(5)));
        assert_eq!(eval("States.ArrayUnique($.list)"), Ok(json!([1, 2, "a"])));
    }

    #[test]
    fn base64_and_hash() {
        assert_eq!(
            eval("States.Base64Encode('Data to encode')"),
            Ok(json!("RGF0YSB0byBlbmNvZGU="))
        );
        assert_eq!(
            eval("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')"),
            Ok(json!("Data to encode"))
        );
        assert!(fails("States.Base64Decode('***')").contains("base64"));
        assert!(fails("States.Base64Decode('/w==')").contains("UTF-8"));
        assert_eq!(
            eval("States.Hash('abc', 'MD5')"),
            Ok(json!("900150983cd24fb0d6963f7d28e17f72"))
        );
        assert_eq!(
            eval("States.Hash('abc', 'SHA-1')"),
            Ok(json!("a9993e364706816aba3e25717850c26c9cd0d89d"))
        );
        assert_eq!(
            eval("States.Hash('abc', 'SHA-256')"),
            Ok(json!(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            ))
        );
        assert_eq!(
            eval("States.Hash('abc', 'SHA-384')"),
            Ok(json!(
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
            ))
        );
        assert_eq!(
            eval("States.Hash('abc', 'SHA-512')"),
            Ok(json!(
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
            ))
        );
        assert!(fails("States.Hash('abc', 'CRC32')").contains("unknown algorithm"));
        assert!(fails("States.Hash($.n, 'MD5')").contains("not a string"));
        let long = format!("States.Base64Encode('{}')", "x".repeat(10_001));
        assert!(fails(&long).contains("at most 10000"));
    }

    #[test]
    fn json_merge() {
        assert_eq!(
            eval("States.JsonMerge($.obj, $.other, false)"),
            Ok(json!({"a": 1, "b": 9}))
        );
        assert!(fails("States.JsonMerge($.obj, $.other, true)").contains("deep"));
        assert!(fails("States.JsonMerge($.list, $.other, false)").contains("object"));
        assert!(fails("States.JsonMerge($.obj, $.other, 'no')").contains("not false"));
    }

    #[test]
    fn math() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let Ok(Value::Number(n)) = eval("States.MathRandom(1, 3)") else {
                panic!("not a number");
            };
            seen.insert(n.as_i64().unwrap());
        }
        // Both ends can come out (200 draws miss one of 3 values with p < 1e-34).
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            eval("States.MathRandom(0, 1000, 7)"),
            eval("States.MathRandom(0, 1000, 7)")
        );
        assert_eq!(eval("States.MathRandom(5, 5)"), Ok(json!(5)));
        assert_eq!(eval("States.MathRandom(4.6, 5.4)"), Ok(json!(5)));
        assert!(fails("States.MathRandom(5, 4)").contains("less than"));
        assert!(fails("States.MathRandom(1, 'x')").contains("a number"));
        assert_eq!(eval("States.MathAdd($.n, -5)"), Ok(json!(-2)));
        assert_eq!(eval("States.MathAdd(2.0, 1)"), Ok(json!(3)));
        assert_eq!(eval("States.MathAdd(1.5, 1)"), Ok(json!(3)));
        assert_eq!(eval("States.MathAdd(-1.5, 0)"), Ok(json!(-1)));
        assert!(fails("States.MathAdd('1', 1)").contains("a number"));
        assert!(fails("States.MathAdd(9223372036854775807, 1)").contains("overflows"));
    }

    #[test]
    fn strings_and_uuid() {
        assert_eq!(
            eval("States.StringSplit($.text, ',;')"),
            Ok(json!(["a", "b", "c"]))
        );
        assert_eq!(
            eval("States.StringSplit('1,,2', ',')"),
            Ok(json!(["1", "2"]))
        );
        assert!(fails("States.StringSplit($.n, ',')").contains("not a string"));
        let Ok(Value::String(id)) = eval("States.UUID()") else {
            panic!("not a string");
        };
        let id = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert_ne!(eval("States.UUID()"), eval("States.UUID()"));
    }

    #[test]
    fn nesting_and_paths_with_punctuation() {
        assert_eq!(
            eval("States.Format('{}-{}', States.ArrayLength(States.Array(1, 2)), $['obj']['a'])"),
            Ok(json!("2-1"))
        );
        let mut nested = "States.Array()".to_string();
        for _ in 0..9 {
            nested = format!("States.Array({nested})");
        }
        assert!(Intrinsic::parse(&nested).is_ok());
        let too_deep = format!("States.Array({nested})");
        assert!(Intrinsic::parse(&too_deep).unwrap_err().contains("nested"));
    }

    #[test]
    fn parse_errors() {
        for (text, wanted) in [
            ("States.Nope(1)", "unknown intrinsic"),
            ("States.Format", "expected '('"),
            ("States.Format('a'", "not closed"),
            ("States.Format('a)", "not closed"),
            ("States.ArrayLength()", "takes 1 arguments"),
            ("States.UUID(1)", "takes 0 arguments"),
            ("States.MathRandom(1)", "2 to 3"),
            ("States.Format()", "at least 1"),
            ("States.Format('a') x", "unexpected text"),
            ("States.Format('a', bogus)", "an argument must be"),
            ("States.Format('a', $.a b)", "bad path"),
            ("States.Format('\\n')", "not an escape"),
            ("States.Format('a',)", "an argument must be"),
            ("Other.Format('a')", "starts with 'States.'"),
        ] {
            let error = Intrinsic::parse(text).expect_err(text);
            assert!(error.contains(wanted), "{text}: {error}");
        }
    }
}
