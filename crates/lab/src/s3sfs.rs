//! An s3s-fs S3 server inside this process, on a temporary directory.

use std::net::SocketAddr;
use std::path::Path;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::sync::{oneshot, watch};

use crate::{LabError, new_key};

/// Why the s3s-fs server could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The tokio runtime or the listener could not be set up.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// s3s-fs refused the root directory. Its error type is not a
    /// `std::error::Error`, so this is its debug text.
    #[error("{0}")]
    FileSystem(String),
}

/// A running s3s-fs server with one bucket and one key.
#[derive(Debug)]
pub struct S3sFs {
    _dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    hang: watch::Sender<bool>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3sFs {
    /// Starts a server on 127.0.0.1 (a free port) with `bucket` created.
    pub fn start(bucket: &str) -> Result<Self, LabError> {
        let dir = tempfile::tempdir().map_err(|source| LabError::Io { what: "temporary directory".into(), source })?;
        Self::start_in(dir, bucket)
    }

    fn start_in(dir: tempfile::TempDir, bucket: &str) -> Result<Self, LabError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| LabError::Io { what, source }
        };
        std::fs::create_dir_all(dir.path().join(bucket)).map_err(io("create bucket directory"))?;
        let (key_id, secret) = new_key();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("bind 127.0.0.1:0"))?;
        listener.set_nonblocking(true).map_err(io("set_nonblocking"))?;
        let addr = listener.local_addr().map_err(io("local_addr"))?;
        let (hang, hang_rx) = watch::channel(false);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let root = dir.path().to_path_buf();
        let (ak, sk) = (key_id.clone(), secret.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("s3s-fs".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
                match rt {
                    Ok(rt) => rt.block_on(serve(root, listener, ak, sk, hang_rx, shutdown_rx, ready_tx)),
                    Err(e) => {
                        // The caller waits on the channel; it only goes away with it.
                        let _ = ready_tx.send(Err(StartError::Io(e)));
                    }
                }
            })
            .map_err(io("spawn s3s-fs thread"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(LabError::S3sFs(e)),
            Err(_) => return Err(LabError::NotReady("s3s-fs thread ended".into())),
        }
        Ok(Self {
            _dir: dir,
            addr,
            bucket: bucket.into(),
            key_id,
            secret,
            hang,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops answering: requests are accepted and held until [`S3sFs::resume`].
    pub fn hang(&self) {
        let _ = self.hang.send(true);
    }

    /// Answers again, including the held requests.
    pub fn resume(&self) {
        let _ = self.hang.send(false);
    }

    /// The directory holding the bucket's objects.
    pub fn root(&self) -> &Path {
        self._dir.path()
    }
}

async fn serve(
    root: std::path::PathBuf,
    listener: std::net::TcpListener,
    ak: String,
    sk: String,
    hang: watch::Receiver<bool>,
    mut shutdown: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<Result<(), StartError>>,
) {
    // The starting thread waits on `ready`; a send fails only once it gave up.
    let fs = match s3s_fs::FileSystem::new(&root) {
        Ok(fs) => fs,
        Err(e) => {
            let _ = ready.send(Err(StartError::FileSystem(format!("{e:?}"))));
            return;
        }
    };
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ak, sk));
    let service = builder.build();
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(StartError::Io(e)));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        let hang = hang.clone();
        let svc = service_fn(move |req| {
            let service = service.clone();
            let mut hang = hang.clone();
            async move {
                while *hang.borrow_and_update() {
                    if hang.changed().await.is_err() {
                        break;
                    }
                }
                hyper::service::Service::call(&service, req).await
            }
        });
        let conn = http.serve_connection(TokioIo::new(socket), svc).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.resume();
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
