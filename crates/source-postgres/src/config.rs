//! The `changes` feed's parameters, checked and typed: what [`crate::Postgres::configure`]
//! keeps is the map [`Changes::write`] gives, and reading that map again gives the same
//! values (the slot and publication names chosen at CREATE are kept from then on).

use gust_source::{refuse_unknown, required, string};
use serde_json::{Map, Value};

/// What the default slot and publication names start with (`gust_` and 20 hex digits).
pub const DEFAULT_PREFIX: &str = "gust_";

/// A row operation the feed can fire on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Insert,
    Update,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Insert, Operation::Update, Operation::Delete];

    /// Its name, as the parameter and a publication's `publish` option spell it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// A table, schema-qualified, with its names as stored (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Table {
    pub schema: String,
    pub name: String,
}

impl Table {
    /// `"schema"."name"`, quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// `name` as a quoted SQL identifier. Names are checked by [`identifier`] first, so there is
/// no quote in them; doubling is kept as the rule anyway.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Feed `changes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    /// The connection URL as given (it may hold a password: a secret).
    pub url: String,
    pub pg: tokio_postgres::Config,
    pub tables: Vec<Table>,
    /// Sorted, without repeats, never empty.
    pub operations: Vec<Operation>,
    pub slot: String,
    pub publication: String,
}

impl Changes {
    pub const PARAMETERS: [&str; 5] = ["url", "tables", "operations", "slot", "publication"];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let url = required(params, "url")?;
        let pg: tokio_postgres::Config = url.parse().map_err(|e| {
            format!("parameter 'url': {e} (use postgres://user:password@host:5432/database)")
        })?;
        let tables = list(params, "tables")?
            .ok_or_else(|| "missing required parameter 'tables'".to_string())?;
        let mut parsed: Vec<Table> = Vec::new();
        for t in &tables {
            let table = table(t)?;
            if !parsed.contains(&table) {
                parsed.push(table);
            }
        }
        if parsed.is_empty() {
            return Err("parameter 'tables' must name at least one table".into());
        }
        let operations = match list(params, "operations")? {
            None => Operation::ALL.to_vec(),
            Some(names) => {
                let mut ops = Vec::new();
                for n in &names {
                    let op = Operation::ALL
                        .into_iter()
                        .find(|o| o.name() == n.as_str())
                        .ok_or_else(|| {
                            format!("parameter 'operations': '{n}' is not insert, update or delete")
                        })?;
                    ops.push(op);
                }
                ops.sort_unstable();
                ops.dedup();
                if ops.is_empty() {
                    return Err("parameter 'operations' must name at least one operation".into());
                }
                ops
            }
        };
        let slot = string(params, "slot")?;
        let publication = string(params, "publication")?;
        for (name, value) in [("slot", &slot), ("publication", &publication)] {
            if let Some(v) = value {
                slot_name(v).map_err(|e| format!("parameter '{name}': {e}"))?;
            }
        }
        let default = || {
            format!(
                "{DEFAULT_PREFIX}{}",
                &uuid::Uuid::new_v4().simple().to_string()[..20]
            )
        };
        let (slot, publication) = match (slot, publication) {
            (Some(s), Some(p)) => (s, p),
            (Some(s), None) => (s.clone(), s),
            (None, Some(p)) => (default(), p),
            (None, None) => {
                let name = default();
                (name.clone(), name)
            }
        };
        Ok(Changes {
            url,
            pg,
            tables: parsed,
            operations,
            slot,
            publication,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("url".into(), self.url.clone().into());
        let tables: Vec<Value> = self.tables.iter().map(|t| t.to_string().into()).collect();
        out.insert("tables".into(), tables.into());
        let ops: Vec<Value> = self.operations.iter().map(|o| o.name().into()).collect();
        out.insert("operations".into(), ops.into());
        out.insert("slot".into(), self.slot.clone().into());
        out.insert("publication".into(), self.publication.clone().into());
        out
    }

    /// The database, its host and port, without credentials, for messages and logs
    /// (`127.0.0.1:5432/test`).
    pub fn shown(&self) -> String {
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}/{}", self.database())
    }

    /// The database connected to (libpq's default: the user's name).
    pub fn database(&self) -> String {
        self.pg
            .get_dbname()
            .or(self.pg.get_user())
            .unwrap_or("postgres")
            .to_string()
    }

    /// Whether the publication publishes `op`.
    pub fn publishes(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }
}

/// An array of non-empty strings, or one string of comma-separated items.
fn list(params: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    let items: Vec<String> = match params.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.split(',').map(|i| i.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.trim().to_string()),
                _ => Err(format!("parameter '{name}' must hold strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(format!(
                "parameter '{name}' must be an array of strings or a comma-separated string"
            ));
        }
    };
    if items.iter().any(String::is_empty) {
        return Err(format!("parameter '{name}' has an empty item"));
    }
    Ok(Some(items))
}

/// `schema.table` or `table` (schema `public`).
fn table(text: &str) -> Result<Table, String> {
    let (schema, name) = match text.split_once('.') {
        Some((s, n)) => (s, n),
        None => ("public", text),
    };
    for part in [schema, name] {
        identifier(part).map_err(|e| format!("parameter 'tables': '{text}': {e}"))?;
    }
    Ok(Table {
        schema: schema.into(),
        name: name.into(),
    })
}

/// A schema or table name as stored: a letter or `_`, then letters, digits, `_` or `$`, at
/// most 63 bytes. Names that need other characters are not taken.
pub fn identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || name.len() > 63
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    {
        return Err(
            "a name is a letter or _, then letters, digits, _ or $, at most 63 characters".into(),
        );
    }
    Ok(())
}

/// A replication slot's (or the publication's) name: PostgreSQL's rule for slots,
/// lower-case letters, digits and `_`, at most 63.
pub fn slot_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err("lower-case letters, digits and _, at most 63 characters".into());
    }
    Ok(())
}
