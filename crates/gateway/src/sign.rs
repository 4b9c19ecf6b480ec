//! SigV4 signatures with the derived signing key cached.
//!
//! `cutover_s3::sigv4::signature` derives the signing key (four chained
//! HMACs from the secret) on every call. The key only depends on (secret,
//! date, region, service), so the gateway keeps the last one per secret
//! (per client access key, per backend) with its credential scope, and
//! reuses them for every request of the day. The output is exactly
//! `sigv4::signature`'s and `sigv4::authorization`'s (tested below).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest, KeyedMac, signature_hex_with_mac, signature_with_mac};
use http::HeaderValue;

/// The time of a request the gateway signs: `AmzDate::now()` and its
/// `x-amz-date` header value.
#[derive(Debug)]
pub struct Stamp {
    pub date: AmzDate,
    pub header: HeaderValue,
}

/// The [`Stamp`] of `now` (a time read by the caller), formatted once per
/// second per thread (a request copies no string of it, and threads share
/// no lock for it).
pub fn amz_at(now: SystemTime) -> Arc<Stamp> {
    thread_local! {
        static LAST: RefCell<Option<(u64, Arc<Stamp>)>> = const { RefCell::new(None) };
    }
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match last.as_ref() {
            Some((s, d)) if *s == secs => d.clone(),
            _ => {
                let date = AmzDate::from_system_time(UNIX_EPOCH + Duration::from_secs(secs));
                let header = HeaderValue::from_str(&date.datetime).expect("an x-amz-date is ASCII digits and letters");
                let d = Arc::new(Stamp { date, header });
                *last = Some((secs, d.clone()));
                d
            }
        }
    })
}

/// A derived signing key (as its keyed HMAC state) and its credential scope.
struct Cached {
    date: String,
    region: String,
    service: &'static str,
    mac: KeyedMac,
    scope: String,
}

/// The last signing key derived for one secret, keyed by (date, region,
/// service). One entry is enough: a secret signs for one region and the
/// date changes once a day. The lock is held only to take (or replace) the
/// entry, never while signing: every request of one client key or to one
/// backend goes through it.
#[derive(Default)]
pub struct KeyCache {
    last: Mutex<Option<Arc<Cached>>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").finish_non_exhaustive()
    }
}

impl KeyCache {
    /// Runs `f` with the signing key and scope for `secret` (always the
    /// same secret for one cache), derived again on a change of day, region
    /// or service. The scope is lent, not copied.
    fn with<R>(
        &self,
        secret: &str,
        date: &str,
        region: &str,
        service: &'static str,
        f: impl FnOnce(&KeyedMac, &str) -> R,
    ) -> R {
        let c = {
            let mut last = self.last.lock().expect("key cache lock");
            match last.as_ref() {
                Some(c) if c.date == date && c.region == region && c.service == service => c.clone(),
                _ => {
                    let c = Arc::new(Cached {
                        date: date.to_string(),
                        region: region.to_string(),
                        service,
                        mac: sigv4::keyed(&sigv4::signing_key(secret, date, region, service)),
                        scope: sigv4::scope(date, region, service),
                    });
                    *last = Some(c.clone());
                    c
                }
            }
        };
        f(&c.mac, &c.scope)
    }

    /// `sigv4::signature(secret, date, region, service, canonical)`, with the key cached.
    pub fn signature(
        &self,
        secret: &str,
        date: &AmzDate,
        region: &str,
        service: &'static str,
        canonical: &str,
    ) -> String {
        self.with(secret, &date.date, region, service, |mac, scope| signature_with_mac(mac, date, scope, canonical))
    }

    /// [`KeyCache::signature`]'s hex digits, not copied into a string;
    /// the date given as its `datetime` text alone (`YYYYMMDDTHHMMSSZ`, the
    /// day before the `T`).
    pub fn signature_hex(
        &self,
        secret: &str,
        datetime: &str,
        region: &str,
        service: &'static str,
        canonical: &str,
    ) -> [u8; 64] {
        self.with(secret, AmzDate::day_of(datetime), region, service, |mac, scope| {
            signature_hex_with_mac(mac, datetime, scope, canonical)
        })
    }
}

/// Runs `f` with the parts of `sigv4::authorization`'s value (the
/// credential scope, the signed header list and the signature), with the
/// signing key cached in `keys`; lent: nothing is copied into a string of
/// its own.
pub fn with_authorization<H: AsRef<str>, R>(
    keys: &KeyCache,
    secret: &str,
    region: &str,
    date: &AmzDate,
    req: &CanonicalRequest<'_, H>,
    f: impl FnOnce(&str, &str, &str) -> R,
) -> R {
    req.with_rendered(None, |canonical, signed| {
        keys.with(secret, &date.date, region, "s3", |mac, scope| {
            let sig = signature_hex_with_mac(mac, &date.datetime, scope, canonical);
            f(scope, signed, sigv4::hex_str(&sig))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_stamp_is_now_and_its_header_is_its_datetime() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let s = amz_at(SystemTime::now());
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(s.header.to_str().unwrap(), s.date.datetime);
        let t = AmzDate::parse(&s.date.datetime).unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!((before..=after).contains(&t), "{t} not in {before}..={after}");
        assert_eq!(s.date.date, s.date.datetime[..8]);
    }

    #[test]
    fn signing_does_not_hold_the_key_cache_lock() {
        // Every verification of one client key (and every request to one
        // backend) takes this cache: signing under its lock would put them
        // all in one queue. A signature made while another is being made
        // (here: from inside it) must not wait for the first.
        let cache = Arc::new(KeyCache::default());
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let d = AmzDate { datetime: "20130524T000000Z".into(), date: "20130524".into() };
        let (tx, rx) = std::sync::mpsc::channel();
        let (c, inner_date) = (cache.clone(), d.clone());
        // Not joined: a thread stuck on the lock must fail the test, not hang it.
        std::thread::spawn(move || {
            let inner = c.with(secret, &inner_date.date, "us-east-1", "s3", |_, _| {
                c.signature(secret, &inner_date, "us-east-1", "s3", "canonical")
            });
            let _ = tx.send(inner);
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("a signature waited for another");
        assert_eq!(got, sigv4::signature(secret, &d, "us-east-1", "s3", "canonical"));
    }

    #[test]
    fn signs_exactly_as_the_shared_signer_and_follows_date_and_region_changes() {
        let cache = KeyCache::default();
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let days = [("20130524T000000Z", "20130524"), ("20130525T235959Z", "20130525")];
        for _ in 0..2 {
            for (datetime, date) in days {
                for region in ["us-east-1", "garage"] {
                    let d = AmzDate { datetime: datetime.into(), date: date.into() };
                    for canonical in ["", "GET\n/\n\nhost:x\n\nhost\nUNSIGNED-PAYLOAD"] {
                        let expected = sigv4::signature(secret, &d, region, "s3", canonical);
                        assert_eq!(cache.signature(secret, &d, region, "s3", canonical), expected);
                        assert_eq!(cache.signature_hex(secret, datetime, region, "s3", canonical), expected.as_bytes());
                    }
                }
            }
        }
        let headers = vec![
            ("Host".to_string(), "examplebucket.s3.amazonaws.com".to_string()),
            ("x-amz-content-sha256".to_string(), sigv4::EMPTY_SHA256.to_string()),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let query = vec![("a b".to_string(), "c/d".to_string())];
        let req = CanonicalRequest {
            method: "GET",
            encoded_path: "/test.txt",
            query: &query,
            headers: &headers,
            payload_hash: sigv4::EMPTY_SHA256,
        };
        let d = AmzDate { datetime: "20130524T000000Z".into(), date: "20130524".into() };
        for _ in 0..2 {
            let value = with_authorization(&cache, secret, "us-east-1", &d, &req, |scope, signed, signature| {
                sigv4::authorization_value("AKIDEXAMPLE", scope, signed, signature)
            });
            assert_eq!(value, sigv4::authorization("AKIDEXAMPLE", secret, "us-east-1", &d, &req));
        }
    }
}
