//! The README's library example is the one [`crate::Cluster`]'s documentation
//! carries, which `cargo test --doc` compiles: a README edit that stops it
//! compiling, or an API change that the README does not follow, fails here
//! rather than in the first program a reader builds from it.

/// The lines of the first fenced block that `opener` opens.
fn fenced<'a>(mut lines: impl Iterator<Item = &'a str>, opener: &str) -> Vec<&'a str> {
    if lines.by_ref().any(|line| line.trim_end() == opener) {
        lines.take_while(|line| line.trim_end() != "```").collect()
    } else {
        Vec::new()
    }
}

#[test]
fn the_readme_library_example_is_the_compiled_one() {
    let readme = include_str!("../README.md");
    let section = readme.lines().skip_while(|line| *line != "## Use it as a library");
    let in_readme = fenced(section, "```rust");
    assert!(!in_readme.is_empty(), "README: no ```rust block under \"## Use it as a library\"");
    // Outer doc comments only (`///`), their `/// ` taken off.
    let docs = include_str!("cluster/mod.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("///"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line));
    let in_docs = fenced(docs, "```no_run");
    assert_eq!(in_readme, in_docs, "the README's example and Cluster's compiled one differ");
}
