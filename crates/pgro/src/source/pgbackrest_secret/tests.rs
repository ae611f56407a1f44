use super::*;

fn files(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn pgo_s3_conf_is_read() {
    let f = files(&[(
        "s3.conf",
        "[global]\nrepo1-s3-key=AKIA\nrepo1-s3-key-secret = s3cr3t\n# comment\nrepo1-cipher-pass=pass\n",
    )]);
    let c = credentials(&f, None).expect("credentials");
    assert_eq!(c.repo, 1);
    assert_eq!(c.s3_key.as_deref(), Some("AKIA"));
    assert_eq!(c.s3_key_secret.as_deref(), Some("s3cr3t"));
    assert_eq!(c.cipher_pass.as_deref(), Some("pass"));
}

#[test]
fn option_keys_with_another_index_are_read_and_chosen() {
    let f = files(&[
        ("repo2-s3-key", "k2"),
        ("repo2-cipher-pass", "p2\n"),
        ("repo3-s3-key", "k3"),
        ("unrelated", "x"),
    ]);
    let c = credentials(&f, None).expect("lowest");
    assert_eq!(
        (c.repo, c.s3_key.as_deref(), c.cipher_pass.as_deref()),
        (2, Some("k2"), Some("p2"))
    );
    let c = credentials(&f, Some(3)).expect("chosen");
    assert_eq!(
        (c.repo, c.s3_key.as_deref(), c.cipher_pass),
        (3, Some("k3"), None)
    );
    let e = credentials(&f, Some(1)).expect_err("absent");
    assert!(e.contains("repo2, repo3"), "{e}");
}

#[test]
fn a_secret_without_options_says_what_is_expected_and_no_value_leaks() {
    let e = credentials(&files(&[("password", "hunter2")]), None).expect_err("none");
    assert!(e.contains("repo1-s3-key") && !e.contains("hunter2"), "{e}");
    let c = credentials(&files(&[("repo1-s3-key-secret", "hunter2")]), None).expect("ok");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn option_names_are_exact() {
    assert_eq!(split_option("repo1-s3-key"), Some((1, "s3-key")));
    assert_eq!(
        split_option("repo256-cipher-pass"),
        Some((256, "cipher-pass"))
    );
    assert_eq!(split_option("repo0-s3-key"), None);
    assert_eq!(split_option("repo1-s3-bucket"), None);
    assert_eq!(split_option("repo-s3-key"), None);
}
