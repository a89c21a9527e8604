//! REDbot (PyPI `redbot`), the HTTP linter: what it notes about one URL.

/// One note: `(level, "NOTE_ID subject", summary)`.
pub type Note = (String, String, String);

/// REDbot's notes on `url` (its HAR output), installing it (PyPI
/// `redbot==2.7.1`, under `target/tools/`) when missing.
pub fn notes(url: &str) -> Vec<Note> {
    let site = super::pypi("redbot", &["redbot==2.7.1"])
        .unwrap_or_else(|why| panic!("REDbot could not be installed (offline?):\n{why}"));
    let mut child = std::process::Command::new("python3")
        .arg(format!("{site}/bin/redbot"))
        .args(["-o", "har", url])
        .env("PYTHONPATH", site)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run redbot");
    // Bounded: REDbot makes a handful of requests to loopback.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("redbot took over 60 s on {url}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let har: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "redbot's HAR ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    har["log"]["entries"][0]["_red_messages"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or("").to_owned();
            (
                s("level"),
                format!("{} {}", s("note_id"), s("subject")),
                s("summary"),
            )
        })
        .collect()
}

/// The `WARN` and `BAD` notes whose id names one of `topics`
/// (case-insensitive): what a test refuses.
pub fn complaints<'a>(notes: &'a [Note], topics: &[&str]) -> Vec<&'a Note> {
    notes
        .iter()
        .filter(|(level, id, _)| {
            let id = id.to_ascii_lowercase();
            (level == "WARN" || level == "BAD") && topics.iter().any(|w| id.contains(w))
        })
        .collect()
}
