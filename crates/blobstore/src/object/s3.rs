//! S3 specifics of [`Bucket`](super::Bucket): the endpoint URL, the bucket's region
//! and the errors a wrong region produces.
//!
//! Kopia (through minio-go) asks the server for the bucket's location when no region is given;
//! a request signed for another region is refused by S3 and MinIO alike. Here the region is read
//! from the `x-amz-bucket-region` header, which AWS and MinIO send on every answer about a
//! bucket — even to an unauthenticated `HEAD` that is otherwise refused — so discovery needs no
//! credentials and no signature.

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};

use super::Endpoint;
use crate::Error;

/// The region requests are signed for when none is configured and the server names none (AWS's
/// default region, and what kopia falls back to as well).
pub(super) const DEFAULT_REGION: &str = "us-east-1";

/// S3 (or S3-compatible, e.g. MinIO) location and credentials, named like kopia's
/// `repository connect s3` flags. Unset credentials fall back to the standard AWS environment
/// variables and instance metadata.
#[derive(Clone, Default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (kopia `--prefix`).
    pub prefix: String,
    /// Region. When unset, the bucket's region is discovered on first use (from the
    /// `x-amz-bucket-region` header), falling back to `us-east-1` when the server names none.
    pub region: Option<String>,
    /// Custom endpoint: `host[:port]` (TLS unless [`S3Config::disable_tls`]) or a URL whose
    /// scheme, `http://` or `https://`, decides TLS by itself.
    pub endpoint: Option<String>,
    /// Use plain HTTP for a `host[:port]` endpoint (kopia `--disable-tls`).
    pub disable_tls: bool,
    /// Access key ID.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
    /// Retries object_store makes on transient HTTP failures (its default is 10).
    pub max_retries: Option<usize>,
    /// Upper bound on the time spent retrying one request (object_store's default is 3 min).
    pub retry_timeout: Option<Duration>,
    /// Virtual-hosted-style requests (`https://<bucket>.<endpoint>/<key>`, pgBackRest's
    /// `repo-s3-uri-style=host`) on a custom endpoint; path style otherwise.
    pub virtual_hosted_style: bool,
    /// Accept any server certificate (pgBackRest's `repo-storage-verify-tls=n`).
    pub skip_tls_verify: bool,
    /// PEM CA certificates trusted for the endpoint besides the platform's roots (CNPG's `endpointCA`).
    pub ca_pem: Option<Vec<u8>>,
}

// Hand-written so that credentials never reach a log line through `{:?}`.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("disable_tls", &self.disable_tls)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// The custom endpoint, if any. A scheme in it decides TLS (`--disable-tls` then changes
    /// nothing); without one, `disable_tls` does, as in kopia.
    pub(super) fn endpoint_url(&self) -> Result<Option<Endpoint>, Error> {
        Endpoint::parse(self.endpoint.as_deref(), self.disable_tls)
    }

    /// An object_store client signing for `region`.
    pub(super) fn build(&self, region: &str) -> Result<AmazonS3, Error> {
        // Client options first: `with_allow_http` below writes into them, and setting them replaces all.
        let mut options = object_store::ClientOptions::new();
        if self.skip_tls_verify {
            options = options.with_allow_invalid_certificates(true);
        }
        for cert in self.ca_certificates()? {
            options = options.with_root_certificate(
                object_store::Certificate::from_pem(&cert).map_err(super::config_err)?,
            );
        }
        let mut b = AmazonS3Builder::from_env()
            .with_client_options(options)
            .with_bucket_name(&self.bucket)
            .with_region(region);
        if let Some(ep) = self.endpoint_url()? {
            b = b.with_endpoint(ep.url).with_allow_http(ep.http);
        }
        if self.virtual_hosted_style {
            b = b.with_virtual_hosted_style_request(true);
        }
        if let Some(v) = &self.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &self.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = &self.session_token {
            b = b.with_token(v);
        }
        if self.max_retries.is_some() || self.retry_timeout.is_some() {
            let mut retry = object_store::RetryConfig::default();
            if let Some(n) = self.max_retries {
                retry.max_retries = n;
            }
            if let Some(t) = self.retry_timeout {
                retry.retry_timeout = t;
            }
            b = b.with_retry(retry);
        }
        b.build().map_err(super::config_err)
    }

    /// Each certificate of [`S3Config::ca_pem`] as its own PEM block (object_store takes one at a time).
    fn ca_certificates(&self) -> Result<Vec<Vec<u8>>, Error> {
        let Some(pem) = &self.ca_pem else {
            return Ok(Vec::new());
        };
        let certs = split_pem(pem);
        if certs.is_empty() {
            return Err(Error::Config {
                reason: "the endpoint CA holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                    .into(),
            });
        }
        Ok(certs)
    }

    /// The bucket's region as the server names it, or `None` when it names none.
    ///
    /// One unauthenticated `HEAD` of the bucket (path-style on a custom endpoint, virtual-hosted
    /// on AWS, like object_store's `resolve_bucket_region`); whatever the status, the header is
    /// read. Only a failure to get any answer is an error ([`Error::Unreachable`], so the
    /// caller's retries apply).
    pub(super) async fn discover_region(&self) -> Result<Option<String>, Error> {
        let (url, http) = match self.endpoint_url()? {
            Some(ep) => (format!("{}/{}", ep.url, self.bucket), ep.http),
            None => (format!("https://{}.s3.amazonaws.com", self.bucket), false),
        };
        // Timeouts as object_store's defaults (5 s to connect, 30 s per request); no redirects,
        // since AWS answers a bucket of another region with a bare 301 that carries the header.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!http);
        let client = self
            .ca_certificates()?
            .iter()
            .try_fold(client, |c, pem| {
                reqwest::Certificate::from_pem(pem).map(|cert| c.add_root_certificate(cert))
            })
            .map_err(|e| Error::Config {
                reason: format!("the endpoint CA: {e}"),
            })?
            .build()
            .map_err(|e| Error::Config {
                reason: format!("HTTP client for region discovery: {e}"),
            })?;
        let resp = client
            .head(&url)
            .send()
            .await
            .map_err(|e| Error::Unreachable {
                source: Box::new(e),
            })?;
        let region = resp
            .headers()
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        Ok(region)
    }
}

/// Whether an S3 error says the request was signed for the wrong region, and the region the
/// server expects when it says so.
///
/// S3 answers `400 AuthorizationHeaderMalformed` with `<Region>…</Region>` (MinIO adds
/// "expecting '…'" to the message), `InvalidRegion` for some requests, and a bare `301` (which
/// object_store reports as a redirect without location) when the endpoint is another region's.
pub(super) fn wrong_region(text: &str) -> Option<Option<String>> {
    const MARKERS: [&str; 4] = [
        "AuthorizationHeaderMalformed",
        "InvalidRegion",
        "the region is wrong",
        "incorrectly configured region",
    ];
    if !MARKERS.iter().any(|m| text.contains(m)) {
        return None;
    }
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let len = text[start..].find(close)?;
        let v = text[start..start + len].trim();
        (!v.is_empty()).then(|| v.to_owned())
    };
    Some(between("<Region>", "</Region>").or_else(|| between("expecting '", "'")))
}

/// The `-----BEGIN CERTIFICATE-----` blocks of a PEM bundle, each with its end line.
fn split_pem(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        const END: &str = "-----END CERTIFICATE-----";
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        out.push(rest.as_bytes()[start..start + len + END.len()].to_vec());
        rest = &rest[start + len + END.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(endpoint: &str, disable_tls: bool) -> S3Config {
        S3Config {
            bucket: "b".into(),
            endpoint: Some(endpoint.into()),
            disable_tls,
            ..Default::default()
        }
    }

    #[test]
    fn a_ca_bundle_is_split_into_certificates_and_text_without_one_is_refused() {
        let block =
            |b: &str| format!("-----BEGIN CERTIFICATE-----\n{b}\n-----END CERTIFICATE-----");
        let bundle = format!(
            "# comment\n{}\n\n{}\ntrailing",
            block("QUJD"),
            block("REVG")
        );
        let certs = split_pem(bundle.as_bytes());
        assert_eq!(
            certs,
            [block("QUJD").into_bytes(), block("REVG").into_bytes()]
        );
        let c = S3Config {
            ca_pem: Some(b"not a certificate".to_vec()),
            ..cfg("https://s3.example", false)
        };
        let e = c.ca_certificates().expect_err("no PEM");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        // A block that is not a certificate fails when the client is built, naming the CA.
        let c = S3Config {
            ca_pem: Some(block("bm90IGRlcg==").into_bytes()),
            ..cfg("https://s3.example", false)
        };
        assert!(c.build("us-east-1").is_err());
    }

    #[test]
    fn endpoint_scheme_decides_tls_whatever_disable_tls_says() {
        let ep = |e, d| cfg(e, d).endpoint_url().unwrap().unwrap();
        assert_eq!(
            ep("http://127.0.0.1:9000", false),
            Endpoint {
                url: "http://127.0.0.1:9000".into(),
                http: true
            }
        );
        assert!(!ep("HTTPS://s3.example:443/", true).http);
        assert_eq!(
            ep("HTTPS://s3.example:443/", true).url,
            "https://s3.example:443"
        );
        assert!(ep("minio:9000", true).http);
        assert_eq!(ep("minio:9000", false).url, "https://minio:9000");
    }

    #[test]
    fn endpoint_with_another_scheme_is_a_configuration_error() {
        for e in ["ftp://host:21", "s3://bucket", "http://"] {
            let err = cfg(e, false).endpoint_url().unwrap_err();
            assert!(matches!(err, Error::EndpointScheme { .. }), "{e}: {err:?}");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn wrong_region_errors_name_the_expected_region() {
        let minio = "Client error with status 400 Bad Request: <?xml version=\"1.0\"?><Error>\
            <Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is \
            malformed; the region is wrong; expecting 'ap-southeast-2'.</Message>\
            <Region>ap-southeast-2</Region></Error>";
        assert_eq!(wrong_region(minio), Some(Some("ap-southeast-2".into())));
        let message_only = "AuthorizationHeaderMalformed: expecting 'eu-west-1'.";
        assert_eq!(wrong_region(message_only), Some(Some("eu-west-1".into())));
        let redirect = "Received redirect without LOCATION, this normally indicates an \
            incorrectly configured region";
        assert_eq!(wrong_region(redirect), Some(None));
        assert_eq!(
            wrong_region("403 Forbidden: <Code>AccessDenied</Code>"),
            None
        );
    }
}
