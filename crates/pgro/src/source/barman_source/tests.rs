use super::*;

fn sel(name: &str, key: &str) -> SecretKeySelector {
    SecretKeySelector {
        name: name.into(),
        key: key.into(),
    }
}

fn source(yaml: &str) -> BarmanCloudSource {
    serde_yaml::from_str(yaml).expect("source")
}

#[test]
fn destination_paths_are_read_as_barman_cloud_reads_them() {
    assert_eq!(
        destination("s3://backups/prod/eu").expect("s3"),
        Destination::S3 {
            bucket: "backups".into(),
            path: "prod/eu".into()
        }
    );
    assert_eq!(
        destination("s3://backups/").expect("s3"),
        Destination::S3 {
            bucket: "backups".into(),
            path: String::new()
        }
    );
    assert_eq!(
        destination("gs://b/x").expect("gs"),
        Destination::Gcs {
            bucket: "b".into(),
            path: "x".into()
        }
    );
    assert_eq!(
        destination("https://acct.blob.core.windows.net/cont/a/b").expect("azure"),
        Destination::Azure {
            account: "acct".into(),
            container: "cont".into(),
            path: "a/b".into(),
            endpoint: None
        }
    );
    assert_eq!(
        destination("https://acct.privatelink.blob.core.windows.net/cont").expect("azure"),
        Destination::Azure {
            account: "acct".into(),
            container: "cont".into(),
            path: String::new(),
            endpoint: None
        }
    );
    // Azurite: the account is the first path segment.
    assert_eq!(
        destination("http://127.0.0.1:10000/devstoreaccount1/cont/p").expect("azurite"),
        Destination::Azure {
            account: "devstoreaccount1".into(),
            container: "cont".into(),
            path: "p".into(),
            endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into())
        }
    );
    for bad in [
        "backups",
        "s3://",
        "ftp://x/y",
        "s3://b/../other",
        "https://acct.blob.core.windows.net",
        "http://127.0.0.1:10000/devstoreaccount1",
    ] {
        let e = destination(bad).expect_err(bad);
        assert!(e.0.contains("is not s3://"), "{bad}: {e}");
    }
}

#[test]
fn referenced_keys_are_read_by_secret_and_key_and_missing_ones_named() {
    let secrets = BTreeMap::from([
        ("creds/ID".to_owned(), b"AKIA\n".to_vec()),
        ("bin/x".to_owned(), vec![0xff, 0xfe]),
    ]);
    assert_eq!(
        value(&secrets, Some(&sel("creds", "ID")), "f").expect("value"),
        Some("AKIA".into())
    );
    assert_eq!(value(&secrets, None, "f").expect("none"), None);
    let e = value(
        &secrets,
        Some(&sel("creds", "SECRET")),
        "s3Credentials.secretAccessKey",
    )
    .expect_err("missing");
    assert_eq!(
        e.0,
        "s3Credentials.secretAccessKey: Secret creds has no key SECRET (or the Secret does not exist)"
    );
    let e = value(&secrets, Some(&sel("bin", "x")), "f").expect_err("binary");
    assert!(e.0.contains("not UTF-8"), "{e}");
    // A reference that would leave the secret directory is refused, not looked up.
    let e = value(&secrets, Some(&sel("..", "x")), "f").expect_err("dots");
    assert!(e.0.contains("letters, digits"), "{e}");
}

#[test]
fn credentials_of_another_storage_and_half_pairs_are_refused_with_what_to_fix() {
    let policy = RetryPolicy::default();
    let secrets = BTreeMap::from([("c/k".to_owned(), b"v".to_vec())]);
    let gcs_with_s3 = source(
        "{destinationPath: 'gs://b', serverName: s, s3Credentials: {accessKeyId: {name: c, key: k}}}",
    );
    let e = barman_store(&gcs_with_s3, &secrets, policy).expect_err("mismatch");
    assert!(e.0.contains("is Google Cloud storage"), "{e}");
    let half = source(
        "{destinationPath: 's3://b', serverName: s, endpointURL: 'http://127.0.0.1:9',
          s3Credentials: {accessKeyId: {name: c, key: k}}}",
    );
    let e = barman_store(&half, &secrets, policy).expect_err("half");
    assert!(e.0.contains("both accessKeyId and secretAccessKey"), "{e}");
    let azure_ad = source(
        "{destinationPath: 'https://a.blob.core.windows.net/c', serverName: s,
          azureCredentials: {inheritFromAzureAD: true}}",
    );
    let e = barman_store(&azure_ad, &secrets, policy).expect_err("azure ad");
    assert!(e.0.contains("not supported by pgro yet"), "{e}");
    let bad_ca = source(
        "{destinationPath: 's3://b', serverName: s, endpointURL: 'https://127.0.0.1:9',
          endpointCA: {name: c, key: k}}",
    );
    let e = barman_store(&bad_ca, &secrets, policy).expect_err("ca");
    assert!(e.0.contains("endpoint CA"), "{e}");
    // An Azure connection string supplies account, key and endpoint.
    let conn = BTreeMap::from([(
        "az/conn".to_owned(),
        b"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;".to_vec(),
    )]);
    let azure = source(
        "{destinationPath: 'http://127.0.0.1:10000/devstoreaccount1/c', serverName: s,
          azureCredentials: {connectionString: {name: az, key: conn}}}",
    );
    barman_store(&azure, &conn, policy).expect("azure from a connection string");
}

#[test]
fn connection_string_fields_are_case_insensitive() {
    let c = "accountname=x;AccountKey=a=b==;";
    assert_eq!(conn_field(c, "AccountName").as_deref(), Some("x"));
    assert_eq!(conn_field(c, "AccountKey").as_deref(), Some("a=b=="));
    assert_eq!(conn_field(c, "BlobEndpoint"), None);
}
