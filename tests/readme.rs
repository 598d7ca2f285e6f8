//! The README quotes the binary: its quoted outputs are checked against
//! what the binary prints for the same command.

mod common;

use common::*;

/// The lines of the README's code block that starts with `$ {command}`.
fn quoted(command: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("$ {command}\n"))
        .unwrap_or_else(|| panic!("README quotes no `$ {command}`"));
    let block = &readme[start..];
    let end = block.find("```").expect("the block ends");
    block[..end].lines().skip(1).map(str::to_string).collect()
}

fn run(args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_inspect_example_is_what_inspect_prints() {
    assert_eq!(
        quoted("bertc inspect bert-base-uncased"),
        run(&["inspect", "bert-base-uncased"])
    );
}

#[test]
fn the_compile_report_example_is_what_compile_prints() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("{}/minilm/", dir.path().display());
    let printed = run(&["compile", minilm_dir().to_str().unwrap(), "--report", "-o", &out]);
    let readme = quoted("bertc compile ~/.cache/bertc/minilm-l6 --report -o minilm/");
    // Pass lines without their milliseconds; the summary lines whose values
    // do not depend on the machine or the cache's path.
    let stable = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                match words.first() {
                    Some(&"pass") => Some(words[..words.len() - 2].join(" ")),
                    Some(&("head" | "parameters" | "opset" | "file" | "folder")) => Some(l.clone()),
                    Some(&"nodes") => Some(l.split(':').next().unwrap().to_string()),
                    _ => None,
                }
            })
            .collect()
    };
    assert_eq!(stable(&readme), stable(&printed));
    assert_eq!(
        stable(&printed).len(),
        19,
        "13 passes and 6 summary lines compared"
    );
}

#[test]
fn the_run_example_is_what_run_prints() {
    let text = "I loved this film, truly wonderful.";
    let model = fixture("pipelines/token-cls");
    assert_eq!(
        quoted(&format!(
            "bertc run tests/fixtures/pipelines/token-cls \"{text}\""
        )),
        run(&["run", model.to_str().unwrap(), text, "--threads", "1"])
    );
}
