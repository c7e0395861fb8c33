//! ServiceAccount tokens: JWTs (`header.payload.signature`, each base64url without padding)
//! signed with HMAC-SHA256 under a key the server keeps with its state, carrying the claims
//! kube-apiserver puts in a TokenRequest token (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`,
//! `jti`, and `kubernetes.io` naming the namespace and the ServiceAccount's name and uid).
//!
//! Time checks allow a leeway as kube's JWT library does (one minute by default): a token is
//! expired once `now > exp + leeway`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The issuer and default audience of kube-apiserver's ServiceAccount tokens.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The key ServiceAccount tokens are signed with.
#[derive(Clone)]
pub struct SigningKey {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid {})", self.key_id())
    }
}

/// Why a token's signature or claims were not accepted (the texts kube-apiserver reports in a
/// TokenReview's `status.error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT of this server (wrong shape, algorithm, issuer or signature): other
    /// authenticators may still know it.
    #[error("not a token of this server")]
    NotOurs,
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotValidYet,
    #[error("service account token is issued in the future")]
    IssuedInTheFuture,
    #[error("service account token claims could not be validated: {0}")]
    BadClaims(String),
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The claims of a ServiceAccount token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
    pub nbf: i64,
    pub sub: String,
}

impl Claims {
    /// Claims for a token of ServiceAccount `namespace/name` (uid `uid`) valid from `now`
    /// for `seconds`.
    pub fn new(
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: Vec<String>,
        now: i64,
        seconds: i64,
    ) -> Claims {
        Claims {
            aud: audiences,
            exp: now + seconds,
            iat: now,
            iss: ISSUER.to_string(),
            jti: super::super::ids::new_uid(),
            kubernetes: KubernetesClaim {
                namespace: namespace.to_string(),
                serviceaccount: ObjectRef {
                    name: name.to_string(),
                    uid: uid.to_string(),
                },
            },
            nbf: now,
            sub: super::user::service_account_username(namespace, name),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

impl SigningKey {
    /// 32 random bytes from the operating system's generator.
    pub fn generate() -> SigningKey {
        let mut bytes = vec![0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SigningKey { bytes }
    }

    /// The key as kept in a state file (base64url).
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.bytes)
    }

    /// A key read back from a state file; `None` when the text is not a key this server
    /// wrote (base64url of at least 32 bytes).
    pub fn from_text(text: &str) -> Option<SigningKey> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        (bytes.len() >= 32).then_some(SigningKey { bytes })
    }

    /// The `kid` header: a digest of the key, so tokens name the key without revealing it.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(&self.bytes);
        URL_SAFE_NO_PAD.encode(&digest[..12])
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; the error case cannot occur.
        match HmacSha256::new_from_slice(&self.bytes) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of every length"),
        }
    }

    /// The signed token.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "HS256".to_string(),
            kid: self.key_id(),
        };
        let encode = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        // Serialising these plain structs cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", encode(&header), encode(&payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = mac.finalize().into_bytes();
        format!("{signing_input}.{}", encode(&signature))
    }

    /// The claims of a token this key signed, checked against the time `now` with `leeway`
    /// seconds of tolerance.
    pub fn verify(&self, token: &str, now: i64, leeway: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::NotOurs);
        };
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::NotOurs);
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::NotOurs)?;
        if header.alg != "HS256" || header.kid != self.key_id() {
            return Err(TokenError::NotOurs);
        }
        let signing_input_len = token.len() - signature.len() - 1;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..signing_input_len]);
        mac.verify_slice(&decode(signature)?)
            .map_err(|_| TokenError::NotOurs)?;
        let claims: Claims = serde_json::from_slice(&decode(payload)?)
            .map_err(|e| TokenError::BadClaims(e.to_string()))?;
        if claims.iss != ISSUER {
            return Err(TokenError::NotOurs);
        }
        if now > claims.exp + leeway {
            return Err(TokenError::Expired);
        }
        if now + leeway < claims.nbf {
            return Err(TokenError::NotValidYet);
        }
        if now + leeway < claims.iat {
            return Err(TokenError::IssuedInTheFuture);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64, seconds: i64) -> Claims {
        Claims::new(
            "ferrolb-system",
            "speaker",
            "u-1",
            vec![ISSUER.to_string()],
            now,
            seconds,
        )
    }

    #[test]
    fn a_signed_token_verifies_and_carries_kubes_claims() {
        let key = SigningKey::generate();
        let token = key.sign(&claims(1000, 3600));
        assert_eq!(token.split('.').count(), 3);
        let got = key.verify(&token, 1000, 60).unwrap();
        assert_eq!(got.sub, "system:serviceaccount:ferrolb-system:speaker");
        assert_eq!(got.kubernetes.serviceaccount.uid, "u-1");
        assert_eq!((got.iat, got.nbf, got.exp), (1000, 1000, 4600));
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["kubernetes.io"]["namespace"], "ferrolb-system");
        assert_eq!(v["kubernetes.io"]["serviceaccount"]["name"], "speaker");
        assert_eq!(v["iss"], ISSUER);
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let key = SigningKey::generate();
        let token = key.sign(&claims(1000, 10));
        assert!(key.verify(&token, 1010, 0).is_ok());
        assert_eq!(key.verify(&token, 1011, 0), Err(TokenError::Expired));
        assert!(key.verify(&token, 1070, 60).is_ok());
        assert_eq!(key.verify(&token, 1071, 60), Err(TokenError::Expired));
        assert_eq!(key.verify(&token, 900, 0), Err(TokenError::NotValidYet));
    }

    #[test]
    fn another_key_a_changed_payload_or_garbage_is_not_ours() {
        let key = SigningKey::generate();
        let token = key.sign(&claims(1000, 3600));
        assert_eq!(
            SigningKey::generate().verify(&token, 1000, 0),
            Err(TokenError::NotOurs)
        );
        let mut forged = claims(1000, 3600);
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(key.verify(&tampered, 1000, 0), Err(TokenError::NotOurs));
        for junk in ["", "a.b", "a.b.c.d", "!!.??.**", "admin-token"] {
            assert_eq!(
                key.verify(junk, 1000, 0),
                Err(TokenError::NotOurs),
                "{junk}"
            );
        }
    }

    #[test]
    fn the_key_survives_its_text_form() {
        let key = SigningKey::generate();
        let back = SigningKey::from_text(&key.to_text()).unwrap();
        let token = key.sign(&claims(1000, 3600));
        assert!(back.verify(&token, 1000, 0).is_ok());
        assert!(SigningKey::from_text("c2hvcnQ").is_none());
        assert!(SigningKey::from_text("not base64 !").is_none());
    }
}
