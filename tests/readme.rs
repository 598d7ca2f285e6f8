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

/// The flags a usage text or a README line names: `--long` and `-X`.
fn flags_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut flags = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('-') {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-') {
            continue;
        }
        let rest = &text[i..];
        let long = rest
            .strip_prefix("--")
            .filter(|r| r.starts_with(|c: char| c.is_ascii_lowercase()));
        let flag: String = match long {
            Some(r) => {
                let name: String = r
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                format!("--{}", name.trim_end_matches('-'))
            }
            None => {
                let mut chars = rest.chars().skip(1);
                match (chars.next(), chars.next()) {
                    (Some(c), next)
                        if c.is_ascii_alphabetic() && !next.is_some_and(|n| n.is_ascii_alphanumeric()) =>
                    {
                        format!("-{c}")
                    }
                    _ => continue,
                }
            }
        };
        flags.insert(flag);
    }
    flags
}

/// The README's section of `bertc {command}`: its `###` heading (the
/// usage line) and its text up to the next heading.
fn section(readme: &str, command: &str) -> (String, String) {
    let start = readme
        .find(&format!("### `bertc {command}"))
        .unwrap_or_else(|| panic!("the README has no section for bertc {command}"));
    let text = &readme[start..];
    let end = text[3..].find("\n#").map_or(text.len(), |e| e + 3);
    let heading = text.lines().next().unwrap().to_string();
    (heading, text[..end].to_string())
}

/// The `###` sections of the README's Usage chapter: (heading, text).
fn usage_sections(readme: &str) -> Vec<(String, String)> {
    let start = readme.find("\n## Usage").expect("a Usage chapter");
    let chapter = &readme[start + 1..];
    let chapter = &chapter[..chapter[3..].find("\n## ").map_or(chapter.len(), |e| e + 3)];
    chapter
        .split("\n### ")
        .skip(1)
        .map(|s| (s.lines().next().unwrap_or("").to_string(), s.to_string()))
        .collect()
}

/// Whether a heading names `command` as a word.
fn mentions(heading: &str, command: &str) -> bool {
    heading
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == command)
}

/// The options `bertc {command} --help` lists (long and short), with
/// clap's own left out.
fn help_flags(command: &str) -> Vec<(Option<String>, String, String)> {
    let help = run(&[command, "--help"]);
    let mut options = vec![];
    for (i, line) in help.iter().enumerate() {
        let t = line.trim_start();
        if !t.starts_with('-') || line.len() - t.len() > 6 {
            continue;
        }
        let words: Vec<&str> = t.split([' ', ',', '=']).filter(|w| !w.is_empty()).collect();
        let short = words
            .first()
            .filter(|w| !w.starts_with("--"))
            .map(|w| w.to_string());
        let Some(long) = words.iter().find(|w| w.starts_with("--")) else {
            continue;
        };
        if ["--help", "--version"].contains(long) {
            continue;
        }
        // The description: the rest of the line, else the next one.
        let description = t
            .split("  ")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .nth(1)
            .map_or_else(
                || help.get(i + 1).map_or(String::new(), |l| l.trim().to_string()),
                str::to_string,
            );
        options.push((short, long.to_string(), description));
    }
    options
}

/// Issue 25 (docs vs binary): every flag a README usage line names is one
/// the binary takes, and every flag the binary takes is in its command's
/// README section — so neither drifts from the other.
#[test]
fn the_readme_flag_lists_are_the_binarys() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let commands = [
        "compile", "optimize", "validate", "run", "dump", "inspect", "bench", "sweep", "serve",
    ];
    let mut problems = vec![];
    for command in commands {
        let (heading, text) = section(&readme, command);
        let options = help_flags(command);
        let taken: std::collections::BTreeSet<String> = options
            .iter()
            .flat_map(|(s, l, _)| s.iter().cloned().chain([l.clone()]))
            .collect();
        for flag in flags_in(&heading) {
            if !taken.contains(&flag) {
                problems.push(format!(
                    "README's `bertc {command}` names {flag}, which it does not take"
                ));
            }
        }
        // Its own section, and the shared ones whose heading names it
        // ("Reduced precision: … (compile and optimize)").
        let mut documented = flags_in(&text);
        for shared in usage_sections(&readme)
            .iter()
            .filter(|(h, _)| mentions(h, command))
        {
            documented.extend(flags_in(&shared.1));
        }
        for (short, long, _) in &options {
            if !documented.contains(long) && !short.as_ref().is_some_and(|s| documented.contains(s)) {
                problems.push(format!("`bertc {command} {long}` is not in the README's section"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Issue 25: `--threads` said "every core" in some commands and "all
/// cores" in others; one wording, the README's.
#[test]
fn every_threads_flag_is_described_alike() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("`--threads` defaults to all cores"));
    for command in ["compile", "optimize", "validate", "run", "bench", "sweep"] {
        let options = help_flags(command);
        let (_, _, description) = options
            .iter()
            .find(|(_, l, _)| l == "--threads")
            .unwrap_or_else(|| panic!("bertc {command} takes no --threads"));
        assert!(
            description.ends_with("(default: all cores)"),
            "bertc {command}: {description}"
        );
    }
}

/// Issue 25: the README said -O2 writes opset 23; it writes the lowest
/// opset covering its ops, 20 for a BERT (Gelu).
#[test]
fn the_readmes_default_opset_at_o2_is_what_compile_writes() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let claim = readme
        .split("at least 17 (so ")
        .nth(1)
        .and_then(|r| r.split(" at\n  `-O2`").next())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.onnx");
    let printed = run(&["compile", "bert-tiny", "--no-check", "-o", out.to_str().unwrap()]);
    let opset = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("opset"))
        .unwrap()
        .trim();
    assert_eq!(
        claim, opset,
        "README: `so {claim} at -O2`; compile printed opset {opset}"
    );
}
