//! Choice rules: a `Variable` compared with a value or another path, and `And`/`Or`/`Not`
//! over rules. A test whose variable (or whose `...Path` operand) is missing, or whose
//! value has the wrong type for the comparator, is false; only `IsPresent: false` holds
//! for a missing variable.

use super::path::{Path, compare_numbers, compare_strings};
use super::timestamp;
use serde_json::Value;
use std::cmp::Ordering;

/// A top-level rule of a Choice state: where to go when its condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: String,
}

/// A (possibly nested) condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Test {
        variable: Path,
        comparator: Comparator,
        operand: Operand,
    },
}

/// What a test compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Value(Value),
    /// A `...Path` comparator: the value at this path of the same input.
    Path(Path),
}

/// An ordering test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

/// The comparator of a test (the `...Path` forms are the same comparator with a
/// [`Operand::Path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    String(Relation),
    StringMatches,
    Numeric(Relation),
    BooleanEquals,
    Timestamp(Relation),
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

/// The operand's JSON type a comparator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperandType {
    String,
    Number,
    Boolean,
    Timestamp,
}

impl Comparator {
    /// Every comparator field name: the comparator and whether it is the `...Path` form.
    pub(crate) fn by_name(name: &str) -> Option<(Comparator, bool)> {
        let relations = [
            ("Equals", Relation::Equals),
            ("LessThan", Relation::LessThan),
            ("GreaterThan", Relation::GreaterThan),
            ("LessThanEquals", Relation::LessThanEquals),
            ("GreaterThanEquals", Relation::GreaterThanEquals),
        ];
        let simple = match name {
            "StringMatches" => Some(Comparator::StringMatches),
            "IsNull" => Some(Comparator::IsNull),
            "IsPresent" => Some(Comparator::IsPresent),
            "IsNumeric" => Some(Comparator::IsNumeric),
            "IsString" => Some(Comparator::IsString),
            "IsBoolean" => Some(Comparator::IsBoolean),
            "IsTimestamp" => Some(Comparator::IsTimestamp),
            _ => None,
        };
        if let Some(comparator) = simple {
            return Some((comparator, false));
        }
        let (base, path) = match name.strip_suffix("Path") {
            Some(base) => (base, true),
            None => (name, false),
        };
        if base == "BooleanEquals" {
            return Some((Comparator::BooleanEquals, path));
        }
        for (family, make) in [
            ("String", Comparator::String as fn(Relation) -> Comparator),
            ("Numeric", Comparator::Numeric),
            ("Timestamp", Comparator::Timestamp),
        ] {
            if let Some(relation) = base.strip_prefix(family)
                && let Some((_, relation)) = relations.iter().find(|(n, _)| *n == relation)
            {
                return Some((make(*relation), path));
            }
        }
        None
    }

    /// The type of the literal operand it takes (`Boolean` for the type tests).
    pub(crate) fn operand_type(self) -> OperandType {
        match self {
            Comparator::String(_) | Comparator::StringMatches => OperandType::String,
            Comparator::Numeric(_) => OperandType::Number,
            Comparator::Timestamp(_) => OperandType::Timestamp,
            _ => OperandType::Boolean,
        }
    }
}

impl Condition {
    /// Whether the condition holds for `input`.
    pub fn holds(&self, input: &Value) -> bool {
        match self {
            Condition::And(all) => all.iter().all(|c| c.holds(input)),
            Condition::Or(any) => any.iter().any(|c| c.holds(input)),
            Condition::Not(inner) => !inner.holds(input),
            Condition::Test {
                variable,
                comparator,
                operand,
            } => {
                let value = variable.select(input, &Value::Null);
                let operand = match operand {
                    Operand::Value(value) => Some(value.clone()),
                    Operand::Path(path) => path.select(input, &Value::Null),
                };
                let Some(operand) = operand else {
                    return false;
                };
                if *comparator == Comparator::IsPresent {
                    return operand.as_bool() == Some(value.is_some());
                }
                let Some(value) = value else {
                    return false;
                };
                test(*comparator, &value, &operand)
            }
        }
    }
}

fn test(comparator: Comparator, value: &Value, operand: &Value) -> bool {
    let expected = || operand.as_bool();
    match comparator {
        Comparator::String(relation) => match (value, operand) {
            (Value::String(a), Value::String(b)) => relation.holds(compare_strings(a, b)),
            _ => false,
        },
        Comparator::StringMatches => match (value, operand) {
            (Value::String(text), Value::String(pattern)) => glob_matches(pattern, text),
            _ => false,
        },
        Comparator::Numeric(relation) => match (value, operand) {
            (Value::Number(a), Value::Number(b)) => {
                compare_numbers(a, b).is_some_and(|order| relation.holds(order))
            }
            _ => false,
        },
        Comparator::BooleanEquals => match (value, operand) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        },
        Comparator::Timestamp(relation) => match (value, operand) {
            (Value::String(a), Value::String(b)) => {
                match (timestamp::parse(a), timestamp::parse(b)) {
                    (Some(a), Some(b)) => relation.holds(a.cmp(&b)),
                    _ => false,
                }
            }
            _ => false,
        },
        Comparator::IsNull => expected() == Some(value.is_null()),
        Comparator::IsNumeric => expected() == Some(value.is_number()),
        Comparator::IsString => expected() == Some(value.is_string()),
        Comparator::IsBoolean => expected() == Some(value.is_boolean()),
        Comparator::IsTimestamp => {
            let is = value
                .as_str()
                .is_some_and(|s| timestamp::parse(s).is_some());
            expected() == Some(is)
        }
        Comparator::IsPresent => expected() == Some(true),
    }
}

impl Relation {
    fn holds(self, order: Ordering) -> bool {
        match self {
            Relation::Equals => order == Ordering::Equal,
            Relation::LessThan => order == Ordering::Less,
            Relation::GreaterThan => order == Ordering::Greater,
            Relation::LessThanEquals => order != Ordering::Greater,
            Relation::GreaterThanEquals => order != Ordering::Less,
        }
    }
}

/// `StringMatches`: `*` matches any run of characters (also none); `\*` is a star and `\\`
/// a backslash.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Star,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            '*' => Token::Star,
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with one backtrack point (the last star): linear for this pattern
    // language.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn test_of(name: &str, operand: Value) -> Condition {
        let (comparator, is_path) = Comparator::by_name(name).unwrap();
        Condition::Test {
            variable: Path::parse("$.v").unwrap(),
            comparator,
            operand: if is_path {
                Operand::Path(Path::parse(operand.as_str().unwrap()).unwrap())
            } else {
                Operand::Value(operand)
            },
        }
    }

    /// `name` with `operand` over `{"v": value, "o": other}`.
    fn check(name: &str, value: Value, operand: Value, expected: bool) {
        let input = json!({"v": value, "o": operand});
        assert_eq!(
            test_of(name, operand.clone()).holds(&input),
            expected,
            "{name} {value} {operand}"
        );
        if Comparator::by_name(&format!("{name}Path")).is_some() {
            assert_eq!(
                test_of(&format!("{name}Path"), json!("$.o")).holds(&input),
                expected,
                "{name}Path {value} {operand}"
            );
        }
    }

    #[test]
    fn string_comparators() {
        check("StringEquals", json!("a"), json!("a"), true);
        check("StringEquals", json!("a"), json!("b"), false);
        check("StringEquals", json!(1), json!("1"), false);
        check("StringLessThan", json!("a"), json!("b"), true);
        check("StringLessThan", json!("b"), json!("b"), false);
        check("StringGreaterThan", json!("b"), json!("a"), true);
        check("StringGreaterThan", json!("a"), json!("a"), false);
        check("StringLessThanEquals", json!("b"), json!("b"), true);
        check("StringLessThanEquals", json!("c"), json!("b"), false);
        check("StringGreaterThanEquals", json!("b"), json!("b"), true);
        check("StringGreaterThanEquals", json!("a"), json!("b"), false);
        // UTF-16 order: U+FF61 sorts after a surrogate pair's high half in UTF-8 but
        // before it in UTF-16.
        check(
            "StringLessThan",
            json!("\u{1F600}"),
            json!("\u{FF61}"),
            true,
        );
    }

    #[test]
    fn string_matches() {
        for (pattern, text, expected) in [
            ("log-*.txt", "log-2024.txt", true),
            ("log-*.txt", "log-.txt", true),
            ("log-*.txt", "log-2024.csv", false),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*.txt", "a.txt.txt", true),
            (r"a\*b", "a*b", true),
            (r"a\*b", "aXb", false),
            (r"a\\b", r"a\b", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} ~ {text}");
        }
        check(
            "StringMatches",
            json!("log-1.txt"),
            json!("log-*.txt"),
            true,
        );
        check("StringMatches", json!(1), json!("*"), false);
    }

    #[test]
    fn numeric_comparators() {
        check("NumericEquals", json!(1), json!(1.0), true);
        check("NumericEquals", json!(1), json!(2), false);
        check("NumericEquals", json!("1"), json!(1), false);
        check("NumericLessThan", json!(1), json!(1.5), true);
        check("NumericLessThan", json!(2), json!(1.5), false);
        check("NumericGreaterThan", json!(-1), json!(-2), true);
        check("NumericGreaterThan", json!(-2), json!(-2), false);
        check("NumericLessThanEquals", json!(3), json!(3), true);
        check("NumericLessThanEquals", json!(4), json!(3), false);
        check("NumericGreaterThanEquals", json!(3), json!(3), true);
        check("NumericGreaterThanEquals", json!(2), json!(3), false);
        check(
            "NumericEquals",
            json!(9007199254740993_i64),
            json!(9007199254740992_i64),
            false,
        );
    }

    #[test]
    fn boolean_and_timestamp_comparators() {
        check("BooleanEquals", json!(true), json!(true), true);
        check("BooleanEquals", json!(false), json!(true), false);
        check("BooleanEquals", json!("true"), json!(true), false);
        let (t1, t2) = ("2024-01-01T00:00:00Z", "2024-01-01T01:00:00+00:00");
        check(
            "TimestampEquals",
            json!(t1),
            json!("2024-01-01T01:00:00+01:00"),
            true,
        );
        check("TimestampEquals", json!(t1), json!(t2), false);
        check("TimestampLessThan", json!(t1), json!(t2), true);
        check("TimestampLessThan", json!(t2), json!(t1), false);
        check("TimestampGreaterThan", json!(t2), json!(t1), true);
        check("TimestampGreaterThan", json!(t1), json!(t1), false);
        check("TimestampLessThanEquals", json!(t1), json!(t1), true);
        check("TimestampLessThanEquals", json!(t2), json!(t1), false);
        check("TimestampGreaterThanEquals", json!(t1), json!(t1), true);
        check("TimestampGreaterThanEquals", json!(t1), json!(t2), false);
        check("TimestampEquals", json!("yesterday"), json!(t1), false);
        check("TimestampEquals", json!(5), json!(t1), false);
    }

    #[test]
    fn type_tests() {
        check("IsNull", json!(null), json!(true), true);
        check("IsNull", json!(1), json!(true), false);
        check("IsNull", json!(1), json!(false), true);
        check("IsNumeric", json!(1.5), json!(true), true);
        check("IsNumeric", json!("1.5"), json!(true), false);
        check("IsString", json!("x"), json!(true), true);
        check("IsString", json!(1), json!(false), true);
        check("IsBoolean", json!(false), json!(true), true);
        check("IsBoolean", json!(0), json!(true), false);
        check(
            "IsTimestamp",
            json!("2024-05-06T07:08:09.5Z"),
            json!(true),
            true,
        );
        check("IsTimestamp", json!("2024-05-06"), json!(true), false);
        check(
            "IsTimestamp",
            json!("2024-05-06T07:08:09z"),
            json!(true),
            false,
        );
        check("IsPresent", json!(null), json!(true), true);
        check("IsPresent", json!(0), json!(false), false);
    }

    #[test]
    fn missing_variable_is_false_except_is_present_false() {
        let input = json!({"o": 1});
        for (name, operand) in [
            ("StringEquals", json!("a")),
            ("NumericEquals", json!(1)),
            ("BooleanEquals", json!(true)),
            ("IsNull", json!(false)),
            ("IsNumeric", json!(false)),
            ("IsPresent", json!(true)),
            ("NumericEqualsPath", json!("$.o")),
        ] {
            assert!(!test_of(name, operand).holds(&input), "{name}");
        }
        assert!(test_of("IsPresent", json!(false)).holds(&input));
        // A ...Path operand that is missing: false too.
        assert!(!test_of("NumericEqualsPath", json!("$.nope")).holds(&json!({"v": 1})));
    }

    #[test]
    fn and_or_not() {
        let yes = test_of("IsPresent", json!(true));
        let no = test_of("IsPresent", json!(false));
        let input = json!({"v": 1});
        assert!(Condition::And(vec![yes.clone(), yes.clone()]).holds(&input));
        assert!(!Condition::And(vec![yes.clone(), no.clone()]).holds(&input));
        assert!(Condition::Or(vec![no.clone(), yes.clone()]).holds(&input));
        assert!(!Condition::Or(vec![no.clone(), no.clone()]).holds(&input));
        assert!(Condition::Not(Box::new(no.clone())).holds(&input));
        assert!(!Condition::Not(Box::new(Condition::Or(vec![no, yes]))).holds(&input));
    }

    #[test]
    fn comparator_names() {
        assert_eq!(
            Comparator::by_name("StringEqualsPath"),
            Some((Comparator::String(Relation::Equals), true))
        );
        assert_eq!(
            Comparator::by_name("TimestampGreaterThanEquals"),
            Some((Comparator::Timestamp(Relation::GreaterThanEquals), false))
        );
        assert_eq!(
            Comparator::by_name("BooleanEqualsPath"),
            Some((Comparator::BooleanEquals, true))
        );
        assert_eq!(Comparator::by_name("StringMatchesPath"), None);
        assert_eq!(Comparator::by_name("IsNullPath"), None);
        assert_eq!(Comparator::by_name("NumericNotEquals"), None);
        assert_eq!(Comparator::by_name("Variable"), None);
    }
}
