//! Store certificates (SPEC §12): a trust anchor's signature binding a
//! reactor identity to one store of one deployment. Admins make them with
//! `sealctl`, the control plane keeps and serves them (it holds no anchor,
//! so it cannot make one), and `sealctl` checks them before it seals
//! anything to a key that identity signed. ADR 0010.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::names::StoreName;
use crate::v1;

/// Domain-separation tag that starts [`StoreCertificate::signed_bytes`].
pub const CERTIFICATE_TAG: &str = "sealplane-store-certificate-v1";

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// A field does not hold what it must.
    #[error("the store certificate's {field} is malformed: {problem}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The signature is not the anchor's over these fields.
    #[error("the store certificate's signature does not verify under its anchor key")]
    BadSignature,
}

/// What a certificate states: this reactor identity serves this store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCertificate {
    /// The deployment (ADR 0010).
    pub deployment_id: Uuid,
    /// The store.
    pub store: StoreName,
    /// Its kind (`vault`, `aws-secrets-manager`, `file`).
    pub kind: String,
    /// The reactor's Ed25519 identity, base64.
    pub reactor_key: String,
    /// 1 for the first identity; each replacement takes the next.
    pub serial: u64,
    /// The anchor's Ed25519 public key, base64.
    pub anchor_key: String,
    /// The anchor's signature over [`StoreCertificate::signed_bytes`], base64.
    pub signature: String,
}

fn key_bytes(text: &str, field: &'static str) -> Result<[u8; 32], CertificateError> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| CertificateError::Malformed {
            field,
            problem: "not base64 of 32 bytes".into(),
        })
}

impl StoreCertificate {
    /// The bytes an anchor signs: each field as its length (u32,
    /// big-endian) and its bytes: the tag, the deployment id's 16 bytes,
    /// the store name, the kind, the reactor key's 32 bytes, the serial as
    /// 8 bytes big-endian.
    pub fn signed_bytes(
        deployment_id: Uuid,
        store: &StoreName,
        kind: &str,
        reactor_key: &[u8; 32],
        serial: u64,
    ) -> Vec<u8> {
        let serial = serial.to_be_bytes();
        let fields: [&[u8]; 6] = [
            CERTIFICATE_TAG.as_bytes(),
            deployment_id.as_bytes(),
            store.as_str().as_bytes(),
            kind.as_bytes(),
            reactor_key,
            &serial,
        ];
        crate::encoding::length_prefixed(&fields)
    }

    /// The reactor identity's 32 bytes.
    pub fn reactor_key_bytes(&self) -> Result<[u8; 32], CertificateError> {
        key_bytes(&self.reactor_key, "reactor_key")
    }

    /// The wire form.
    pub fn to_proto(&self) -> v1::StoreCertificate {
        v1::StoreCertificate {
            deployment_id: self.deployment_id.to_string(),
            store: self.store.to_string(),
            kind: self.kind.clone(),
            reactor_key: self.reactor_key.clone(),
            serial: self.serial,
            anchor_key: self.anchor_key.clone(),
            signature: self.signature.clone(),
        }
    }

    /// From the wire, checking every field's form (not the signature).
    pub fn from_proto(wire: v1::StoreCertificate) -> Result<Self, CertificateError> {
        let malformed = |field, problem: String| CertificateError::Malformed { field, problem };
        let certificate = StoreCertificate {
            deployment_id: Uuid::parse_str(&wire.deployment_id)
                .map_err(|_| malformed("deployment_id", "not a UUID".into()))?,
            store: StoreName::parse(wire.store).map_err(|e| malformed("store", e.to_string()))?,
            kind: wire.kind,
            reactor_key: wire.reactor_key,
            serial: wire.serial,
            anchor_key: wire.anchor_key,
            signature: wire.signature,
        };
        certificate.reactor_key_bytes()?;
        key_bytes(&certificate.anchor_key, "anchor_key")?;
        if certificate.serial == 0 {
            return Err(malformed("serial", "serials start at 1".into()));
        }
        Ok(certificate)
    }
}

#[cfg(feature = "signatures")]
pub use signing::TrustAnchor;

#[cfg(feature = "signatures")]
mod signing {
    use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
    use zeroize::Zeroizing;

    use super::*;

    /// A trust anchor's private key, as admins hold it: its file is one
    /// line, the base64 of the 32-byte Ed25519 seed. Never printed.
    pub struct TrustAnchor(SigningKey);

    impl std::fmt::Debug for TrustAnchor {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "TrustAnchor({})", self.public_key_base64())
        }
    }

    impl TrustAnchor {
        /// A new random anchor.
        pub fn generate() -> TrustAnchor {
            TrustAnchor(SigningKey::generate(&mut rand_core::OsRng))
        }

        /// Reads the text of an anchor file.
        pub fn from_text(text: &str) -> Result<TrustAnchor, CertificateError> {
            let seed = Zeroizing::new(key_bytes(text, "anchor key file")?);
            Ok(TrustAnchor(SigningKey::from_bytes(&seed)))
        }

        /// The text of an anchor file (secret: write it 0600).
        pub fn to_text(&self) -> Zeroizing<String> {
            Zeroizing::new(format!("{}\n", STANDARD.encode(self.0.to_bytes())))
        }

        /// The public key users trust, base64.
        pub fn public_key_base64(&self) -> String {
            STANDARD.encode(self.0.verifying_key().as_bytes())
        }

        /// The certificate binding `reactor_key` to `store` of
        /// `deployment_id` as its `serial`th identity.
        pub fn certify(
            &self,
            deployment_id: Uuid,
            store: StoreName,
            kind: &str,
            reactor_key: [u8; 32],
            serial: u64,
        ) -> StoreCertificate {
            StoreCertificate::sign(&self.0, deployment_id, store, kind, reactor_key, serial)
        }
    }

    impl StoreCertificate {
        /// The certificate `anchor` makes for `reactor_key` serving
        /// `store` of `deployment_id`, as its `serial`th identity.
        pub fn sign(
            anchor: &SigningKey,
            deployment_id: Uuid,
            store: StoreName,
            kind: &str,
            reactor_key: [u8; 32],
            serial: u64,
        ) -> StoreCertificate {
            let bytes = Self::signed_bytes(deployment_id, &store, kind, &reactor_key, serial);
            StoreCertificate {
                deployment_id,
                store,
                kind: kind.to_owned(),
                reactor_key: STANDARD.encode(reactor_key),
                serial,
                anchor_key: STANDARD.encode(anchor.verifying_key().as_bytes()),
                signature: STANDARD.encode(anchor.sign(&bytes).to_bytes()),
            }
        }

        /// Checks the signature under the certificate's own anchor key;
        /// whether that anchor is trusted is the caller's question.
        pub fn verify(&self) -> Result<(), CertificateError> {
            let anchor = VerifyingKey::from_bytes(&key_bytes(&self.anchor_key, "anchor_key")?)
                .map_err(|_| CertificateError::BadSignature)?;
            let signature = STANDARD
                .decode(self.signature.trim())
                .ok()
                .and_then(|b| Signature::from_slice(&b).ok())
                .ok_or(CertificateError::BadSignature)?;
            let bytes = Self::signed_bytes(
                self.deployment_id,
                &self.store,
                &self.kind,
                &self.reactor_key_bytes()?,
                self.serial,
            );
            // Strict: no weak keys, no second signature for one statement.
            anchor
                .verify_strict(&bytes, &signature)
                .map_err(|_| CertificateError::BadSignature)
        }
    }

    #[cfg(test)]
    mod tests {
        use rand_core::OsRng;

        use super::*;

        fn certificate(anchor: &SigningKey) -> StoreCertificate {
            StoreCertificate::sign(
                anchor,
                Uuid::from_u128(1),
                StoreName::parse("prod").unwrap(),
                "vault",
                [7; 32],
                2,
            )
        }

        #[test]
        fn a_certificate_verifies_and_survives_the_wire_and_the_log() {
            let anchor = SigningKey::generate(&mut OsRng);
            let c = certificate(&anchor);
            c.verify().unwrap();
            let back = StoreCertificate::from_proto(c.to_proto()).unwrap();
            assert_eq!(back, c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<StoreCertificate>(&json).unwrap(), c);
        }

        #[test]
        fn any_changed_field_breaks_the_signature() {
            let anchor = SigningKey::generate(&mut OsRng);
            let good = certificate(&anchor);
            let mut changes = vec![];
            let mut c = good.clone();
            c.deployment_id = Uuid::from_u128(2);
            changes.push(c);
            let mut c = good.clone();
            c.store = StoreName::parse("prod2").unwrap();
            changes.push(c);
            let mut c = good.clone();
            c.kind = "file".into();
            changes.push(c);
            let mut c = good.clone();
            c.reactor_key = STANDARD.encode([8u8; 32]);
            changes.push(c);
            let mut c = good.clone();
            c.serial = 3;
            changes.push(c);
            let mut c = good.clone();
            c.anchor_key =
                STANDARD.encode(SigningKey::generate(&mut OsRng).verifying_key().as_bytes());
            changes.push(c);
            for changed in changes {
                assert_eq!(
                    changed.verify(),
                    Err(CertificateError::BadSignature),
                    "{changed:?}"
                );
            }
        }

        #[test]
        fn an_anchor_file_round_trips_and_certifies() {
            let anchor = TrustAnchor::generate();
            let back = TrustAnchor::from_text(&anchor.to_text()).unwrap();
            assert_eq!(back.public_key_base64(), anchor.public_key_base64());
            let c = back.certify(
                Uuid::from_u128(1),
                StoreName::parse("s").unwrap(),
                "file",
                [3; 32],
                1,
            );
            c.verify().unwrap();
            assert_eq!(c.anchor_key, anchor.public_key_base64());
            assert!(!format!("{anchor:?}").contains(anchor.to_text().trim()));
            assert!(TrustAnchor::from_text("not a key").is_err());
        }

        #[test]
        fn malformed_certificates_are_refused_on_the_wire() {
            let anchor = SigningKey::generate(&mut OsRng);
            let mut wire = certificate(&anchor).to_proto();
            wire.serial = 0;
            assert!(StoreCertificate::from_proto(wire.clone()).is_err());
            wire.serial = 1;
            wire.reactor_key = "short".into();
            assert!(StoreCertificate::from_proto(wire.clone()).is_err());
            wire.reactor_key = STANDARD.encode([1u8; 32]);
            wire.store = "Not A Label".into();
            assert!(StoreCertificate::from_proto(wire).is_err());
        }
    }
}
