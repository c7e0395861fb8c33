//! The speakers' membership key: when the Secret holding it is missing, the controller creates
//! one at start (as MetalLB's controller does with `--ml-secret-name`), so layer 2 failover
//! never silently falls back to the Node Ready condition for want of a key.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// The data key holding the membership key (MetalLB's `MLSecretKeyName`).
pub const SECRET_KEY: &str = "secretkey";

/// What [`ensure`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// The Secret was there (whatever it holds: the speakers report a missing key).
    Existed,
    /// It was missing and this call created it.
    Created,
}

/// A Secret `name` holding a fresh random key (256 bits, as lowercase hex text, so it can also
/// be passed as an environment variable, as MetalLB's is).
pub fn new_secret(name: &str, random: [u8; 32]) -> Secret {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "ferrolb".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            SECRET_KEY.to_string(),
            ByteString(hex.into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// Creates Secret `name` in `namespace` unless it exists. Only `create` is needed: a Secret
/// that exists answers 409, so the controller never reads the key it does not use.
pub async fn ensure(client: &Client, namespace: &str, name: &str) -> Result<Ensured, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api
        .create(&PostParams::default(), &new_secret(name, rand::random()))
        .await
    {
        Ok(_) => Ok(Ensured::Created),
        // There already, put by the user, the chart or another replica.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Ensured::Existed),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_random_hex_under_metallbs_data_key() {
        let a = new_secret("memberlist", [0xab; 32]);
        let key = &a.data.as_ref().expect("data")[SECRET_KEY].0;
        assert_eq!(key.len(), 64);
        assert!(key.iter().all(|b| b"0123456789abcdef".contains(b)));
        assert_eq!(a.metadata.name.as_deref(), Some("memberlist"));
        let b = new_secret("memberlist", [0xcd; 32]);
        assert_ne!(a.data, b.data);
    }
}
