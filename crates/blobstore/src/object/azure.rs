//! Azure Blob Storage settings for [`Bucket::azure`](super::Bucket::azure).

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};

use super::Endpoint;
use crate::Error;

/// An Azure storage container and its credentials. Unset credentials fall back to the standard
/// `AZURE_*` environment (and managed identity).
#[derive(Clone, Default)]
pub struct AzureConfig {
    /// Storage account name.
    pub account: String,
    /// Container name.
    pub container: String,
    /// Key prefix inside the container, prepended verbatim.
    pub prefix: String,
    /// The account's shared key.
    pub access_key: Option<String>,
    /// A SAS token (the query string, with or without the leading `?`).
    pub sas_token: Option<String>,
    /// A custom account URL, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`; an
    /// `http://` URL allows plain HTTP.
    pub endpoint: Option<String>,
}

// Hand-written so that credentials never reach a log line through `{:?}`.
impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("account", &self.account)
            .field("container", &self.container)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AzureConfig {
    /// The object_store builder for these settings.
    pub(super) fn builder(&self) -> Result<MicrosoftAzureBuilder, Error> {
        let mut b = MicrosoftAzureBuilder::from_env()
            .with_account(&self.account)
            .with_container_name(&self.container);
        if let Some(k) = &self.access_key {
            b = b.with_access_key(k);
        }
        if let Some(sas) = &self.sas_token {
            b = b.with_config(AzureConfigKey::SasKey, sas);
        }
        if let Some(ep) = Endpoint::parse(self.endpoint.as_deref(), false)? {
            b = b.with_endpoint(ep.url).with_allow_http(ep.http);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use object_store::ClientConfigKey;

    use super::*;

    fn value(cfg: &AzureConfig, key: AzureConfigKey) -> Option<String> {
        cfg.builder().unwrap().get_config_value(&key)
    }

    fn sample() -> AzureConfig {
        AzureConfig {
            account: "acct".into(),
            container: "backups".into(),
            ..Default::default()
        }
    }

    #[test]
    fn azure_config_maps_account_container_and_credentials() {
        let cfg = AzureConfig {
            access_key: Some("a2V5".into()),
            sas_token: Some("?sv=2024&sig=x".into()),
            ..sample()
        };
        assert_eq!(
            value(&cfg, AzureConfigKey::AccountName).as_deref(),
            Some("acct")
        );
        assert_eq!(
            value(&cfg, AzureConfigKey::ContainerName).as_deref(),
            Some("backups")
        );
        assert_eq!(
            value(&cfg, AzureConfigKey::AccessKey).as_deref(),
            Some("a2V5")
        );
        assert_eq!(
            value(&cfg, AzureConfigKey::SasKey).as_deref(),
            Some("?sv=2024&sig=x")
        );
    }

    #[test]
    fn azure_endpoint_scheme_decides_plain_http() {
        let cfg = AzureConfig {
            endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
            ..sample()
        };
        assert_eq!(
            value(&cfg, AzureConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_eq!(
            value(&cfg, AzureConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("true")
        );
        let cfg = AzureConfig {
            endpoint: Some("ftp://x".into()),
            ..sample()
        };
        assert!(matches!(cfg.builder(), Err(Error::EndpointScheme { .. })));
    }

    #[test]
    fn azure_config_debug_hides_credentials() {
        let cfg = AzureConfig {
            access_key: Some("SECRET".into()),
            sas_token: Some("SIG".into()),
            ..sample()
        };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("SECRET") && !dbg.contains("SIG"), "{dbg}");
    }
}
