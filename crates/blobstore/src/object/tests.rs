use super::*;

#[derive(Debug)]
struct Status(u16);

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server answered {}", self.0)
    }
}

impl std::error::Error for Status {}

fn generic(status: u16) -> object_store::Error {
    // object_store's retry error prints `status: N` in its debug form; so does this stand-in.
    object_store::Error::Generic {
        store: "S3",
        source: format!("Status {{ status: {status} }}").into(),
    }
}

fn client(signing: bool) -> Client {
    Client::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("b")
            .with_region("us-east-1")
            .build()
            .unwrap(),
        signing.then(|| ("b".to_owned(), "us-east-1".to_owned())),
    )
}

#[test]
fn http_errors_map_to_classes() {
    let c = client(false);
    let class = |s| map_err(&c, Some("k"), generic(s)).class();
    assert_eq!(class(403), crate::ErrorClass::Denied);
    assert_eq!(class(401), crate::ErrorClass::Denied);
    assert_eq!(class(400), crate::ErrorClass::Other);
    assert_eq!(class(429), crate::ErrorClass::Transient);
    assert_eq!(class(503), crate::ErrorClass::Transient);
    let nf = object_store::Error::NotFound {
        path: "k".into(),
        source: Box::new(Status(404)),
    };
    assert!(matches!(map_err(&c, Some("k"), nf), Error::NotFound { key } if key == "k"));
}

#[test]
fn a_wrong_region_answer_is_a_configuration_error() {
    let e = object_store::Error::Generic {
        store: "S3",
        source: "AuthorizationHeaderMalformed: expecting 'eu-west-1'.".into(),
    };
    let err = map_err(&client(true), Some("k"), e);
    assert!(matches!(
        &err,
        Error::WrongRegion { expected: Some(r), .. } if r == "eu-west-1"
    ));
    assert_eq!(err.class(), crate::ErrorClass::Misconfigured);
}

#[test]
fn endpoint_without_scheme_uses_tls_unless_disabled() {
    let ep = |e, d| Endpoint::parse(Some(e), d).unwrap().unwrap();
    assert_eq!(ep("minio:9000/", false).url, "https://minio:9000");
    assert!(ep("minio:9000", true).http);
    assert_eq!(Endpoint::parse(Some("  "), false).unwrap(), None);
}
