//! The process kinds a host offers: `nodejs:<major>` and `python:<major.minor>` for the
//! interpreters it has, and `native` (an x86-64 Linux executable that speaks the action loop
//! itself). Found on the host at start, or given by the operator (`KIND=INTERPRETER`).
//! Lambda functions' kinds (`lambda:python3.12`, `lambda:nodejs20.x`, `lambda:provided.al2023`,
//! decision 0025) run on the host's interpreter of their family, or (`provided*`) as the
//! zip's own `bootstrap`.

use std::path::{Path, PathBuf};
use std::process::Command;

use gust_model::lambda::{self, Runtime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Node,
    Python,
    Native,
}

impl Family {
    /// The name before the colon, as `GET /api/v1` groups runtimes.
    pub fn name(self) -> &'static str {
        match self {
            Family::Node => "nodejs",
            Family::Python => "python",
            Family::Native => "native",
        }
    }

    fn of(kind: &str) -> Option<Family> {
        if let Some(name) = lambda::runtime_name(kind) {
            return Some(match lambda::runtime(name)? {
                Runtime::Python => Family::Python,
                Runtime::Node => Family::Node,
                Runtime::Provided => Family::Native,
            });
        }
        match kind.split(':').next()? {
            "nodejs" => Some(Family::Node),
            "python" => Some(Family::Python),
            "native" => Some(Family::Native),
            _ => None,
        }
    }
}

/// One process kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// `nodejs:20`, `python:3.11`, `native`.
    pub name: String,
    pub family: Family,
    /// The interpreter (none for `native`).
    pub interpreter: Option<PathBuf>,
    /// The default of its family (`nodejs:default` names it).
    pub default: bool,
    /// A Lambda function's kind: its runtime speaks the Lambda Runtime API.
    pub lambda: Option<Runtime>,
}

/// The kinds of one host.
#[derive(Debug, Clone, Default)]
pub struct Kinds(Vec<Kind>);

impl Kinds {
    /// Node.js and Python from the usual system locations, and `native` on x86-64 Linux.
    pub fn detect() -> Kinds {
        let mut kinds = Vec::new();
        for (family, names) in [
            (Family::Node, ["/usr/local/bin/node", "/usr/bin/node"]),
            (
                Family::Python,
                ["/usr/local/bin/python3", "/usr/bin/python3"],
            ),
        ] {
            if let Some(kind) = names.iter().find_map(|p| probe(family, Path::new(p))) {
                kinds.push(kind);
            }
        }
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            kinds.push(native());
        }
        Kinds(kinds)
    }

    /// No process kinds.
    pub const fn none() -> Kinds {
        Kinds(Vec::new())
    }

    /// Kinds given as `nodejs=/path/to/node`, `python=/usr/bin/python3.11`, `native`: each
    /// interpreter is asked its version, which names the kind.
    pub fn from_specs(specs: &[String]) -> Result<Kinds, String> {
        let mut kinds: Vec<Kind> = Vec::new();
        for spec in specs {
            let (family, path) = spec.split_once('=').unwrap_or((spec.as_str(), ""));
            let fam = Family::of(family)
                .ok_or_else(|| format!("unknown runtime '{family}' (nodejs, python or native)"))?;
            let kind = match fam {
                Family::Native => native(),
                _ => probe(fam, Path::new(path)).ok_or_else(|| {
                    format!("'{path}' is not a working {} interpreter", fam.name())
                })?,
            };
            if !kinds.iter().any(|k| k.name == kind.name) {
                let first = !kinds.iter().any(|k| k.family == kind.family);
                kinds.push(Kind {
                    default: first,
                    ..kind
                });
            }
        }
        Ok(Kinds(kinds))
    }

    pub fn all(&self) -> &[Kind] {
        &self.0
    }

    /// The kind a name gives (`nodejs:default` is the family's default; a Lambda runtime
    /// runs on its family's default), if offered.
    pub fn resolve(&self, name: &str) -> Option<Kind> {
        if let Some(family) = name.strip_suffix(":default") {
            return self
                .0
                .iter()
                .find(|k| k.family.name() == family && k.default)
                .cloned();
        }
        if let Some(runtime) = lambda::runtime_name(name).and_then(lambda::runtime) {
            let family = Family::of(name)?;
            let base = self.0.iter().find(|k| k.family == family && k.default)?;
            return Some(Kind {
                name: name.to_string(),
                default: false,
                lambda: Some(runtime),
                ..base.clone()
            });
        }
        self.0.iter().find(|k| k.name == name).cloned()
    }

    /// The Lambda kinds offered, one per family this host runs (for listings).
    pub fn lambda_examples(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (family, name) in [
            (Family::Python, "lambda:python3.x"),
            (Family::Node, "lambda:nodejsN.x"),
            (Family::Native, "lambda:provided.al2023"),
        ] {
            if self.0.iter().any(|k| k.family == family) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// Whether `name` is a process kind at all (offered here or not).
    pub fn is_process_kind(name: &str) -> bool {
        Family::of(name).is_some()
    }
}

fn native() -> Kind {
    Kind {
        name: "native".into(),
        family: Family::Native,
        interpreter: None,
        default: true,
        lambda: None,
    }
}

/// Asks the interpreter its version: `v20.11.1` -> `nodejs:20`, `Python 3.11.2` ->
/// `python:3.11`.
fn probe(family: Family, path: &Path) -> Option<Kind> {
    let path = std::fs::canonicalize(path).ok()?;
    let out = Command::new(&path).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let version = text.split_whitespace().last()?.trim_start_matches('v');
    let mut parts = version.split('.');
    let name = match family {
        Family::Node => format!("nodejs:{}", parts.next()?),
        Family::Python => format!("python:{}.{}", parts.next()?, parts.next()?),
        Family::Native => return None,
    };
    Some(Kind {
        name,
        family,
        interpreter: Some(path),
        default: true,
        lambda: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_defaults_and_names() {
        let kinds = Kinds(vec![
            Kind {
                name: "nodejs:20".into(),
                family: Family::Node,
                interpreter: None,
                default: true,
                lambda: None,
            },
            native(),
        ]);
        assert_eq!(kinds.resolve("nodejs:default").unwrap().name, "nodejs:20");
        assert_eq!(kinds.resolve("nodejs:20").unwrap().name, "nodejs:20");
        assert!(kinds.resolve("nodejs:18").is_none());
        assert!(kinds.resolve("python:default").is_none());
        let l = kinds.resolve("lambda:nodejs22.x").unwrap();
        assert_eq!((l.family, l.lambda), (Family::Node, Some(Runtime::Node)));
        assert_eq!(l.name, "lambda:nodejs22.x");
        assert!(kinds.resolve("lambda:python3.11").is_none());
        assert_eq!(
            kinds.resolve("lambda:provided.al2023").unwrap().family,
            Family::Native
        );
        assert!(kinds.resolve("lambda:java21").is_none());
        assert!(Kinds::is_process_kind("python:3.12"));
        assert!(!Kinds::is_process_kind("wasm"));
    }
}
