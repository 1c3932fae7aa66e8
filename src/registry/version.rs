//! Pinned versions in a server's command line, and which of two is newer.

use std::cmp::Ordering;

use super::entry::ServerJson;

/// How a server's command line pins its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// `npm`, `pypi` or `oci`.
    pub kind: &'static str,
    /// The package (an image without its tag).
    pub package: String,
    pub version: String,
    /// Which argument holds the pin.
    pub index: usize,
}

impl Pin {
    /// The argument pinned to `version` instead.
    pub fn with_version(&self, version: &str) -> String {
        match self.kind {
            "npm" => format!("{}@{version}", self.package),
            "pypi" => format!("{}=={version}", self.package),
            _ => format!("{}:{version}", self.package),
        }
    }
}

/// The pin of `npx [-y] pkg@V`, `uvx pkg==V` or `docker|podman run ... image:tag`;
/// `None` for anything else (an unpinned package, another command).
pub fn pin_of(command: &str, args: &[String]) -> Option<Pin> {
    let program = command.rsplit('/').next().unwrap_or(command);
    match program {
        "npx" => args.iter().enumerate().find_map(|(index, arg)| {
            if arg.starts_with('-') {
                return None;
            }
            let (package, version) = match arg.strip_prefix('@') {
                Some(scoped) => {
                    let (p, v) = scoped.rsplit_once('@')?;
                    (format!("@{p}"), v)
                }
                None => arg.rsplit_once('@').map(|(p, v)| (p.to_string(), v))?,
            };
            exact(version).then(|| Pin {
                kind: "npm",
                package,
                version: version.to_string(),
                index,
            })
        }),
        "uvx" => args.iter().enumerate().find_map(|(index, arg)| {
            let (package, version) = arg.split_once("==")?;
            (!arg.starts_with('-') && exact(version)).then(|| Pin {
                kind: "pypi",
                package: package.to_string(),
                version: version.to_string(),
                index,
            })
        }),
        "docker" | "podman" if args.first().is_some_and(|a| a == "run") => {
            // The image is the first word after the options; options that take a
            // value are written `--name value` by `add`, so skip what follows them.
            let mut index = 1;
            while let Some(arg) = args.get(index) {
                if !arg.starts_with('-') {
                    break;
                }
                let takes_value = !matches!(arg.as_str(), "-i" | "-t" | "-it" | "--rm" | "-d")
                    && !arg.contains('=');
                index += if takes_value { 2 } else { 1 };
            }
            let image = args.get(index)?;
            let tag = super::translate::image_tag(image)?;
            let package = image.strip_suffix(tag)?.strip_suffix(':')?;
            exact(tag).then(|| Pin {
                kind: "oci",
                package: package.to_string(),
                version: tag.to_string(),
                index,
            })
        }
        _ => None,
    }
}

/// A version that pins exactly (not a range, a dist-tag or `latest`).
fn exact(version: &str) -> bool {
    version.starts_with(|c: char| c.is_ascii_digit()) && super::check::version(version).is_ok()
}

/// Compares dotted versions numerically (`1.10.0` > `1.9.2`); a pre-release
/// (`1.0.0-beta`) is older than its release. Text parts compare as text.
pub fn compare(a: &str, b: &str) -> Ordering {
    let split = |v: &str| {
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((main, pre)) => (main.to_string(), Some(pre.to_string())),
            None => (v.to_string(), None),
        }
    };
    let ((main_a, pre_a), (main_b, pre_b)) = (split(a), split(b));
    let parts = |v: &str| -> Vec<String> { v.split('.').map(str::to_string).collect() };
    let (pa, pb) = (parts(&main_a), parts(&main_b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map_or("0", String::as_str);
        let y = pb.get(i).map_or("0", String::as_str);
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    match (pre_a, pre_b) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(x), Some(y)) => compare(&x, &y),
    }
}

/// The version `entry` pins for the package `pin` names (the same registry type and
/// package), or the entry's own version (a remote, or no pin to match). `None` when
/// the entry has no such package, or its version is not a pinned one.
pub fn latest_for(entry: &ServerJson, pin: Option<&Pin>) -> Option<String> {
    version_for(entry, pin).filter(|v| exact(v))
}

/// `version` when it pins exactly.
pub fn latest_for_text(version: &str) -> Option<&str> {
    exact(version).then_some(version)
}

/// The version `entry` gives for the package `pin` names, pinned or not.
pub fn version_for(entry: &ServerJson, pin: Option<&Pin>) -> Option<String> {
    let version = match pin {
        None => entry.version.clone(),
        Some(pin) => {
            let package = entry.packages.iter().find(|p| {
                p.registry_type == pin.kind && {
                    let id = p.identifier.as_str();
                    let bare = super::translate::image_tag(id)
                        .and_then(|tag| id.strip_suffix(tag))
                        .and_then(|id| id.strip_suffix(':'))
                        .unwrap_or(id);
                    bare == pin.package
                }
            })?;
            super::translate::image_tag(&package.identifier)
                .filter(|_| pin.kind == "oci")
                .map(str::to_string)
                .or_else(|| package.version.clone())
                .unwrap_or_else(|| entry.version.clone())
        }
    };
    Some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn pins_are_found_in_the_three_command_lines() {
        let pin = pin_of("npx", &strings(&["-y", "@scope/pkg@1.2.3", "--flag"])).unwrap();
        assert_eq!(
            (pin.package.as_str(), pin.version.as_str(), pin.index),
            ("@scope/pkg", "1.2.3", 1)
        );
        assert_eq!(pin.with_version("1.3.0"), "@scope/pkg@1.3.0");
        let pin = pin_of("uvx", &strings(&["weather-mcp==0.5.0"])).unwrap();
        assert_eq!(pin.with_version("0.6.0"), "weather-mcp==0.6.0");
        let pin = pin_of(
            "docker",
            &strings(&[
                "run",
                "-i",
                "--rm",
                "-e",
                "LOG_LEVEL",
                "--mount",
                "x",
                "mcp/fs:1.0.2",
                "/project",
            ]),
        )
        .unwrap();
        assert_eq!((pin.package.as_str(), pin.index), ("mcp/fs", 7));
        assert!(pin_of("npx", &strings(&["-y", "@scope/pkg"])).is_none());
        assert!(pin_of("npx", &strings(&["-y", "pkg@latest"])).is_none());
        assert!(pin_of("node", &strings(&["server.js"])).is_none());
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare("1.10.0", "1.9.2"), Ordering::Greater);
        assert_eq!(compare("1.0.0-beta", "1.0.0"), Ordering::Less);
        assert_eq!(compare("2.0", "2.0.0"), Ordering::Equal);
        assert_eq!(compare("0.5.0", "0.6.0"), Ordering::Less);
    }
}
