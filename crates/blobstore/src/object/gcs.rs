//! Google Cloud Storage settings for [`Bucket::gcs`](super::Bucket::gcs).

use object_store::ClientConfigKey;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

use super::Endpoint;
use crate::Error;

/// A GCS bucket and its credentials. Unset credentials fall back to the standard `GOOGLE_*`
/// environment and application default credentials.
#[derive(Clone, Default)]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, prepended verbatim.
    pub prefix: String,
    /// A service-account key as JSON (the contents of a key file, as Secrets hold it).
    pub service_account_key: Option<String>,
    /// The path of a service-account key file.
    pub service_account_path: Option<String>,
    /// An emulator's base URL (fake-gcs-server, e.g. `http://127.0.0.1:4443`); requests to it are
    /// not authenticated.
    pub endpoint: Option<String>,
}

// Hand-written so that credentials never reach a log line through `{:?}`.
impl std::fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("service_account_path", &self.service_account_path)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl GcsConfig {
    /// The object_store builder for these settings.
    pub(super) fn builder(&self) -> Result<GoogleCloudStorageBuilder, Error> {
        let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(&self.bucket);
        if let Some(k) = &self.service_account_key {
            b = b.with_service_account_key(k);
        }
        if let Some(p) = &self.service_account_path {
            b = b.with_service_account_path(p);
        }
        if let Some(ep) = Endpoint::parse(self.endpoint.as_deref(), false)? {
            if self.service_account_key.is_some() || self.service_account_path.is_some() {
                return Err(Error::Config {
                    reason: "a GCS emulator endpoint takes no service-account credentials".into(),
                });
            }
            // object_store reads the base URL only from service-account JSON; `disable_oauth`
            // sends requests unsigned, as emulators expect.
            let key = format!(
                r#"{{"gcs_base_url":{:?},"disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}}"#,
                ep.url
            );
            b = b.with_service_account_key(key).with_config(
                GoogleConfigKey::Client(ClientConfigKey::AllowHttp),
                ep.http.to_string(),
            );
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(cfg: &GcsConfig, key: GoogleConfigKey) -> Option<String> {
        cfg.builder().unwrap().get_config_value(&key)
    }

    #[test]
    fn gcs_config_maps_bucket_and_credentials() {
        let cfg = GcsConfig {
            bucket: "backups".into(),
            service_account_key: Some(r#"{"client_email":"a@b"}"#.into()),
            ..Default::default()
        };
        assert_eq!(
            value(&cfg, GoogleConfigKey::Bucket).as_deref(),
            Some("backups")
        );
        assert_eq!(
            value(&cfg, GoogleConfigKey::ServiceAccountKey).as_deref(),
            Some(r#"{"client_email":"a@b"}"#)
        );
        let cfg = GcsConfig {
            bucket: "backups".into(),
            service_account_path: Some("/secret/key.json".into()),
            ..Default::default()
        };
        assert_eq!(
            value(&cfg, GoogleConfigKey::ServiceAccount).as_deref(),
            Some("/secret/key.json")
        );
    }

    #[test]
    fn gcs_emulator_endpoint_becomes_an_unsigned_base_url() {
        let cfg = GcsConfig {
            bucket: "b".into(),
            endpoint: Some("http://127.0.0.1:4443/".into()),
            ..Default::default()
        };
        let key = value(&cfg, GoogleConfigKey::ServiceAccountKey).unwrap();
        assert!(
            key.contains(r#""gcs_base_url":"http://127.0.0.1:4443""#),
            "{key}"
        );
        assert!(key.contains(r#""disable_oauth":true"#), "{key}");
        assert_eq!(
            value(&cfg, GoogleConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("true")
        );
        assert!(super::super::Bucket::gcs(&cfg).is_ok());
    }

    #[test]
    fn gcs_emulator_endpoint_with_credentials_or_a_bad_scheme_is_refused() {
        let cfg = GcsConfig {
            bucket: "b".into(),
            endpoint: Some("http://127.0.0.1:4443".into()),
            service_account_path: Some("/k.json".into()),
            ..Default::default()
        };
        assert!(matches!(cfg.builder(), Err(Error::Config { .. })));
        let cfg = GcsConfig {
            bucket: "b".into(),
            endpoint: Some("gs://x".into()),
            ..Default::default()
        };
        assert!(matches!(cfg.builder(), Err(Error::EndpointScheme { .. })));
    }

    #[test]
    fn gcs_config_debug_hides_the_key() {
        let cfg = GcsConfig {
            service_account_key: Some("PRIVATE".into()),
            ..Default::default()
        };
        assert!(!format!("{cfg:?}").contains("PRIVATE"));
    }
}
