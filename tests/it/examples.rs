//! Every example validates, plans, is formatted, and points at the schema.

use crate::common::{TestEnv, repo_root};

fn examples() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_is_valid_formatted_and_has_a_schema() {
    let files = examples();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"quickstart.toml".into()) && names.contains(&"profiles.toml".into()),
        "{names:?}"
    );
    let env = TestEnv::new();
    for file in files {
        let path = file.to_str().unwrap();
        env.run(&["-f", path, "validate"]).success();
        env.run(&["-f", path, "fmt", "--check"]).success();
        env.run(&["-f", path, "plan", "--detailed-exitcode"])
            .code(2);
        let text = std::fs::read_to_string(&file).unwrap();
        let schema = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#:schema "))
            .unwrap_or_else(|| panic!("{path} does not start with #:schema"));
        assert!(
            file.parent().unwrap().join(schema).is_file(),
            "{path}: {schema} does not exist"
        );
    }
}

#[test]
fn profiles_example_resolves_each_layer() {
    let path = repo_root().join("examples/profiles.toml");
    let config = mcpctl::model::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let everything = &config.servers["everything"];
    assert_eq!((everything.port, everything.instances), (9100, 2));
    assert_eq!(everything.env["LOG_LEVEL"], "warn");
    let echo = &config.servers["echo"];
    assert_eq!((echo.port, echo.instances), (8101, 1));
    assert_eq!(echo.env["LOG_LEVEL"], "debug");
    assert_eq!(echo.env["API_BASE"], "http://127.0.0.1:9999");
}
