//! The functional core stays pure: model, plan, render and diag do no I/O.

use crate::common::repo_root;

#[test]
fn the_pure_modules_do_no_io() {
    let forbidden = [
        "tokio",
        "std::fs",
        "std::process",
        "Instant::now",
        "SystemTime::now",
        "std::env",
        "std::net::TcpStream",
    ];
    let mut files = Vec::new();
    for dir in ["src/model", "src/plan", "src/render"] {
        collect(&repo_root().join(dir), &mut files);
    }
    files.push(repo_root().join("src/diag.rs"));
    assert!(files.len() > 5);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for (n, line) in code.enumerate() {
            for word in forbidden {
                assert!(
                    !line.contains(word),
                    "{}:{}: uses `{word}`",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
