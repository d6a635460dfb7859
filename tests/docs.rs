//! The documentation's shape, so that it cannot regress: README.md stays a short front door that
//! names the two commands, and every relative link in README.md and docs/**/*.md resolves to a
//! file or directory inside the repository (and, for a `#anchor` into a markdown file, to one of
//! its headings, slugged as GitHub does). No KVM needed; std only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// README.md's longest allowed length, in lines: the rest belongs in docs/.
const README_MAX_LINES: usize = 250;

/// The repository root (vmm/..), canonical.
fn repo_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .canonicalize()
        .expect("the repository root exists")
}

/// The markdown files whose links are checked, relative to the root: README.md and every
/// docs/**/*.md, sorted.
fn checked_files(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("a directory entry");
            let rel = dir.join(entry.file_name());
            if entry.file_type().expect("a file type").is_dir() {
                walk(root, &rel, out);
            } else if rel.extension().is_some_and(|e| e == "md") {
                out.push(rel);
            }
        }
    }
    let mut files = vec![PathBuf::from("README.md")];
    walk(root, Path::new("docs"), &mut files);
    files.sort();
    files
}

/// The lines of `md`, with every line of a fenced code block (``` or ~~~), fences included,
/// replaced by an empty line: what is left can hold links and headings.
fn prose_lines(md: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for line in md.lines() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |c| trimmed.chars().take_while(|x| *x == c).count());
        match fence {
            Some((c, n)) => {
                if indent <= 3 && marker == Some(c) && run >= n && trimmed[run..].trim().is_empty()
                {
                    fence = None;
                }
                out.push("");
            }
            None if indent <= 3 && run >= 3 => {
                fence = Some((marker.unwrap(), run));
                out.push("");
            }
            None => out.push(line),
        }
    }
    out
}

/// The prose of `md` in blocks that a link cannot cross: a paragraph or list (its lines joined,
/// so that a link may wrap), and each heading, table row or reference definition alone.
fn prose_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    for line in prose_lines(md) {
        let start = line.trim_start();
        let alone = start.starts_with('|')
            || start.starts_with('#')
            || (start.starts_with('[') && start.contains("]:"));
        if start.is_empty() || alone {
            if !paragraph.is_empty() {
                blocks.push(paragraph.join(" "));
                paragraph.clear();
            }
            if alone {
                blocks.push(line.to_string());
            }
        } else {
            paragraph.push(line);
        }
    }
    if !paragraph.is_empty() {
        blocks.push(paragraph.join(" "));
    }
    blocks
}

/// `line` with every inline code span (a run of n backticks up to the next run of exactly n)
/// replaced by spaces; an unclosed run stays as it is.
fn blank_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = chars.clone();
    let run_at = |i: usize| chars[i..].iter().take_while(|c| **c == '`').count();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let n = run_at(i);
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let m = run_at(j);
                if m == n {
                    close = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                for c in &mut out[i..j + n] {
                    *c = ' ';
                }
                i = j + n;
            }
            None => i += n,
        }
    }
    out.into_iter().collect()
}

/// A link found in markdown: its text and its target as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    text: String,
    target: String,
}

/// Every inline link `[text](target)` and image `![alt](target)` of one block of prose, or the
/// reference definition `[label]: target` it is. The target drops an optional title and `<...>` brackets.
fn block_links(block: &str) -> Vec<Link> {
    let chars: Vec<char> = block.chars().collect();
    let mut links = Vec::new();
    let definition = block.trim_start();
    if definition.starts_with('[') && !definition.starts_with("[^") {
        if let Some(end) = definition
            .find("]:")
            .filter(|e| definition.find(']') == Some(*e))
        {
            let target = definition[end + 2..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            links.push(Link {
                text: definition[1..end].to_string(),
                target: unbracket(target),
            });
            return links;
        }
    }
    for open in 0..chars.len() {
        if chars[open] != '[' || (open > 0 && chars[open - 1] == '\\') {
            continue;
        }
        // The matching `]`, nested brackets counted.
        let mut depth = 0usize;
        let mut close = None;
        for (k, c) in chars.iter().enumerate().skip(open) {
            match c {
                '[' if k == open || chars[k - 1] != '\\' => depth += 1,
                ']' if chars[k - 1] != '\\' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(k);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { continue };
        if chars.get(close + 1) != Some(&'(') {
            continue;
        }
        // The matching `)`, nested parentheses counted.
        let mut depth = 0usize;
        let mut end = None;
        for (k, c) in chars.iter().enumerate().skip(close + 1) {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(k);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { continue };
        let inside: String = chars[close + 2..end].iter().collect();
        let inside = inside.trim();
        let target = if let Some(rest) = inside.strip_prefix('<') {
            rest.split('>').next().unwrap_or("").to_string()
        } else {
            inside.split_whitespace().next().unwrap_or("").to_string()
        };
        links.push(Link {
            text: chars[open + 1..close].iter().collect(),
            target,
        });
    }
    links
}

/// `<target>` without its angle brackets.
fn unbracket(target: &str) -> String {
    target
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(target)
        .to_string()
}

/// Every link of a markdown document, outside code.
fn links(md: &str) -> Vec<Link> {
    prose_blocks(md)
        .iter()
        .flat_map(|b| block_links(&blank_code_spans(b)))
        .collect()
}

/// A heading's anchor as GitHub makes it: the rendered text lowercased, every character that
/// is not a letter, digit, `-`, `_` or space dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    // A link renders as its text.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](") else {
            break;
        };
        let Some(close) = rest[open + mid..].find(')') else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..open + mid]);
        rest = &rest[open + mid + close + 1..];
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown document: its ATX headings' slugs (a repeated slug gets `-1`,
/// `-2`, ... as on GitHub) and any HTML `id="..."` or `name="..."`. Setext headings are not
/// recognised: write headings with `#`.
fn anchors(md: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    for line in prose_lines(md) {
        for attr in ["id=\"", "name=\""] {
            for (at, _) in line.match_indices(attr) {
                let value = &line[at + attr.len()..];
                if let Some(end) = value.find('"') {
                    out.insert(value[..end].to_string());
                }
            }
        }
    }
    for line in prose_lines(md) {
        let trimmed = line.trim_start_matches(' ');
        if line.len() - trimmed.len() > 3 {
            continue;
        }
        let level = trimmed.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&level) {
            continue;
        }
        let rest = &trimmed[level..];
        if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
            continue;
        }
        let text = rest.trim().trim_end_matches('#').trim();
        let base = slug(text);
        let n = seen.entry(base.clone()).or_insert(0);
        let anchor = if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        *n += 1;
        out.insert(anchor);
    }
    out
}

/// `%XX` escapes decoded (a link to a name with spaces is written `%20`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True for links to the web or mail, which are not files and are not checked here.
fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|p| target.to_ascii_lowercase().starts_with(p))
}

/// Resolves `target`'s path part, written in the file `from` (relative to the root), to a path
/// relative to the root; an error if it is not a plain relative path or climbs above the root.
fn resolve(from: &Path, path: &str) -> Result<PathBuf, String> {
    if path.contains("://") || path.to_ascii_lowercase().starts_with("file:") {
        return Err("is not a relative link into the repository".into());
    }
    // `/x` is the repository root's x on GitHub.
    let (start, path) = match path.strip_prefix('/') {
        Some(p) => (PathBuf::new(), p),
        None => (from.parent().unwrap_or(Path::new("")).to_path_buf(), path),
    };
    let mut parts: Vec<String> = start
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for c in Path::new(path).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err("points outside the repository".into());
                }
            }
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("is not a relative link into the repository".into())
            }
        }
    }
    Ok(parts.iter().collect())
}

/// Checks every link of the markdown `md`, which lives at `from` (relative to `root`): each
/// relative target must be a file or directory inside the repository, and a `#anchor` into a
/// markdown file one of its headings. Returns one line per broken link.
fn check_links(root: &Path, from: &Path, md: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for link in links(md) {
        let target = link.target.as_str();
        if is_external(target) {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target, None),
        };
        let path = percent_decode(path.split('?').next().unwrap_or(""));
        let problem = |why: String| format!("{}: [{}]({target}) {why}", from.display(), link.text);
        if path.is_empty() && anchor.is_none() {
            problems.push(problem("has an empty target".into()));
            continue;
        }
        let rel = if path.is_empty() {
            from.to_path_buf()
        } else {
            match resolve(from, &path) {
                Ok(rel) => rel,
                Err(why) => {
                    problems.push(problem(why));
                    continue;
                }
            }
        };
        let full = root.join(&rel);
        // A symbolic link may still lead out of the repository.
        match full.canonicalize() {
            Ok(real) if real.starts_with(root) => {}
            Ok(_) => {
                problems.push(problem("points outside the repository".into()));
                continue;
            }
            Err(_) if rel == from => {}
            Err(_) => {
                problems.push(problem(format!(
                    "names {}, which does not exist",
                    rel.display()
                )));
                continue;
            }
        }
        let Some(anchor) = anchor else { continue };
        if rel.extension().is_none_or(|e| e != "md") {
            continue; // e.g. #L10 into source: GitHub's own anchors
        }
        let text = if rel == from {
            md.to_string()
        } else {
            fs::read_to_string(&full).unwrap_or_default()
        };
        if !anchors(&text).contains(&percent_decode(anchor)) {
            problems.push(problem(format!(
                "names #{anchor}, which is no heading of {}",
                rel.display()
            )));
        }
    }
    problems
}

#[test]
fn readme_is_a_short_front_door() {
    let root = repo_root();
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move detail into docs/"
    );
    for needle in ["make run", "make test"] {
        assert!(readme.contains(needle), "README.md must mention `{needle}`");
    }
    let targets: Vec<String> = links(&readme).into_iter().map(|l| l.target).collect();
    assert!(
        targets.iter().any(|t| t == "docs/design.md"),
        "README.md must link docs/design.md: {targets:?}"
    );
}

#[test]
fn every_relative_link_resolves_inside_the_repository() {
    let root = repo_root();
    let files = checked_files(&root);
    assert!(files.len() > 1, "no docs/**/*.md found: {files:?}");
    let mut problems = Vec::new();
    for file in &files {
        let md = fs::read_to_string(root.join(file)).expect("a markdown file");
        problems.extend(check_links(&root, file, &md));
    }
    assert!(
        problems.is_empty(),
        "{} broken links:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_doc_is_reachable_from_the_readme() {
    let root = repo_root();
    let files: BTreeSet<PathBuf> = checked_files(&root).into_iter().collect();
    let mut reached = BTreeSet::from([PathBuf::from("README.md")]);
    let mut todo = vec![PathBuf::from("README.md")];
    while let Some(file) = todo.pop() {
        let md = fs::read_to_string(root.join(&file)).expect("a markdown file");
        for link in links(&md) {
            if is_external(&link.target) {
                continue;
            }
            let path = link.target.split('#').next().unwrap_or("");
            if path.is_empty() {
                continue;
            }
            if let Ok(rel) = resolve(&file, &percent_decode(path)) {
                if files.contains(&rel) && reached.insert(rel.clone()) {
                    todo.push(rel);
                }
            }
        }
    }
    let orphans: Vec<_> = files.difference(&reached).collect();
    assert!(
        orphans.is_empty(),
        "docs no link from README.md leads to: {orphans:?}"
    );
}

#[test]
fn the_checker_catches_broken_links() {
    let root = repo_root();
    let md = "# A page\n\
              \n\
              ## Exit status (`--json PATH`)\n\
              \n\
              [missing](no-such-file.md) and [outside](../../outside.md) and\n\
              [bad anchor](../README.md#no-such-heading), [absolute escape](/../etc/passwd),\n\
              but [fine](../README.md), [self](#exit-status---json-path), [dir](../docs),\n\
              [web](https://example.com/x.md), [mail](mailto:a@b.c), `[code](not-a-link.md)`\n\
              \n\
              ```sh\n\
              echo [fenced](also-not-a-link.md)\n\
              ```\n";
    let problems = check_links(&root, Path::new("docs/virtual.md"), md);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for (target, why) in [
        ("no-such-file.md", "does not exist"),
        ("../../outside.md", "outside the repository"),
        ("../README.md#no-such-heading", "no heading"),
        ("/../etc/passwd", "outside the repository"),
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("]({target})")) && p.contains(why)),
            "{target} not reported as {why:?}: {problems:#?}"
        );
    }
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Exit status"), "exit-status");
    assert_eq!(
        slug("JSON report (`--json PATH`)"),
        "json-report---json-path"
    );
    assert_eq!(
        slug("AP bringup (median of 3 runs; bringup = BSP's BringupStart to AllOnline)"),
        "ap-bringup-median-of-3-runs-bringup--bsps-bringupstart-to-allonline"
    );
    assert_eq!(slug("Peer: QEMU"), "peer-qemu");
    assert_eq!(slug("`tsc_sync` and [links](x.md)"), "tsc_sync-and-links");
    let a = anchors("# Notes\n## Notes\n```\n# not a heading\n```\n<a id=\"here\"></a>\n");
    let want: HashSet<String> = ["notes", "notes-1", "here"].map(String::from).into();
    assert_eq!(a, want);
}

#[test]
fn links_are_found_outside_code_only() {
    let found =
        links("[a](x.md \"title\") ![img](p.svg) [b](<y z.md>) `[c](no.md)` [d]\n[e]: w.md\n");
    let targets: Vec<_> = found.iter().map(|l| l.target.as_str()).collect();
    assert_eq!(targets, ["x.md", "p.svg", "y z.md", "w.md"]);
    // A link may wrap; a code span too; a fence or a blank line ends both.
    let wrapped = links(
        "see [the\nreference](a.md) and `[no\n](b.md)`\n\n[c\n\n](d.md)\n```\n[e](f.md)\n```\n",
    );
    let targets: Vec<_> = wrapped.iter().map(|l| l.target.as_str()).collect();
    assert_eq!(targets, ["a.md"]);
    assert_eq!(percent_decode("a%20b.md"), "a b.md");
}
