//! The drill's application: writes through the gateway every 20 ms and
//! remembers what was acknowledged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover_s3::S3Client;
use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct ClientView {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// key → (SHA-256, when it was acknowledged)
    pub acked: Mutex<BTreeMap<String, (String, Instant)>>,
}

pub async fn workload(client: S3Client, view: Arc<ClientView>, stop: Arc<AtomicBool>, run: u32) {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("cutover-drill/{run}/{i:06}");
        let body = Bytes::from(format!("drill write {run}/{i}"));
        let hash = hex::encode(Sha256::digest(&body));
        match client.put_object(&key, body, &[]).await {
            Ok(_) => {
                view.acked.lock().unwrap().insert(key, (hash, Instant::now()));
                view.ok.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                view.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
