//! A fault-injecting TCP proxy that sits between a device core and the
//! server.
//!
//! The proxy listens on `127.0.0.1:0` and forwards each client connection to
//! the current upstream (the server). It reads HTTP/1.1 requests one at a
//! time (head, then a `content-length` body; the core never pipelines and
//! never sends chunked bodies) and, per request, applies one [`Fault`]:
//!
//! - [`Fault::Pass`]: forward it.
//! - [`Fault::Refuse`]: the connection is closed when it is accepted
//!   (offline, as far as the client can tell).
//! - [`Fault::Drop`]: the request is read and the connection closed; the
//!   server never sees it.
//! - [`Fault::Delay`]: wait, then forward.
//! - [`Fault::Cut`]: forward; let `n` bytes of the answer through, then close
//!   both sides as soon as the server has sent more. The server has applied
//!   the request and answered; the client never sees the whole answer (a lost
//!   acknowledgement).
//! - [`Fault::Duplicate`]: send the same request bytes to the server a second
//!   time on a fresh connection (before the original, or concurrently with
//!   it), and discard that answer.
//! - [`Fault::CutRequest`]: forward only the first `n` bytes of the request
//!   (head and body), then close both sides: the link lost in the middle of
//!   an upload. The server sees a body that ends early.
//!
//! A [`Link`] shapes every byte both ways to a bandwidth and adds a latency
//! to each request (an emulated 2G link: [`Link::two_g`]).
//!
//! Which fault a request gets: offline beats everything; then the first
//! scripted fault whose prefix matches the request line (`"POST
//! /v1/sync/push"`), used once; then a draw from the [`Weather`], if any,
//! with the proxy's seeded random generator; else `Pass`.
//!
//! Switching the upstream (a server restart on a new port), going offline
//! and [`Proxy::close_connections`] close every live connection, as a real
//! restart or a lost network would. The proxy counts requests, faults and
//! the bytes it carries each way (TCP payload: HTTP heads and bodies).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The largest request head the proxy accepts.
const MAX_HEAD: usize = 64 * 1024;

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward it.
    Pass,
    /// Close the connection as it is accepted.
    Refuse,
    /// Read the request, then close without forwarding it.
    Drop,
    /// Wait this long, then forward it.
    Delay(Duration),
    /// Forward it; pass this many bytes of the answer, then cut the connection.
    Cut(usize),
    /// Forward it, and send the same bytes to the server once more.
    Duplicate,
    /// Forward only the first this many bytes of the request, then cut the
    /// connection both ways.
    CutRequest(usize),
}

/// A slow link: every byte, each way, at `bytes_per_second`; each request
/// waits `latency` before it is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Bandwidth, each way.
    pub bytes_per_second: u64,
    /// Added to each exchange.
    pub latency: Duration,
}

impl Link {
    /// A 2G link: 64 kbit/s, 300 ms.
    pub fn two_g() -> Self {
        Self {
            bytes_per_second: 64_000 / 8,
            latency: Duration::from_millis(300),
        }
    }
}

/// Writes `bytes` at the link's pace (at once without a link).
async fn paced_write(
    w: &mut OwnedWriteHalf,
    bytes: &[u8],
    link: Option<Link>,
) -> std::io::Result<()> {
    let Some(link) = link else {
        return w.write_all(bytes).await;
    };
    let started = tokio::time::Instant::now();
    let rate = link.bytes_per_second.max(1) as f64;
    let mut sent = 0usize;
    for slice in bytes.chunks(512) {
        w.write_all(slice).await?;
        sent += slice.len();
        let due = started + Duration::from_secs_f64(sent as f64 / rate);
        tokio::time::sleep_until(due).await;
    }
    Ok(())
}

/// Random faults: each request draws one, with these probabilities (the
/// rest pass). Refusals are drawn per connection, when it is accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Weather {
    /// A new connection is closed at once.
    pub refuse: f64,
    /// A request is swallowed.
    pub drop: f64,
    /// A request is delayed by up to `max_delay`.
    pub delay: f64,
    /// The longest delay.
    pub max_delay: Duration,
    /// An answer is cut after fewer than `max_cut` bytes.
    pub cut: f64,
    /// Cuts happen before this many bytes of the answer.
    pub max_cut: usize,
    /// A request is sent to the server twice.
    pub duplicate: f64,
}

impl Weather {
    /// A bad mobile network: a bit of everything.
    pub fn stormy() -> Self {
        Self {
            refuse: 0.08,
            drop: 0.08,
            delay: 0.15,
            max_delay: Duration::from_millis(30),
            cut: 0.15,
            max_cut: 400,
            duplicate: 0.12,
        }
    }

    /// Mostly fine, the odd failure.
    pub fn patchy() -> Self {
        Self {
            refuse: 0.03,
            drop: 0.03,
            delay: 0.1,
            max_delay: Duration::from_millis(10),
            cut: 0.05,
            max_cut: 400,
            duplicate: 0.05,
        }
    }
}

/// What the proxy has seen and done since it started (or was reset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests read from clients.
    pub requests: u64,
    /// Bytes from clients (requests), as read.
    pub bytes_up: u64,
    /// Bytes to clients (answers), as written.
    pub bytes_down: u64,
    /// Connections refused.
    pub refused: u64,
    /// Requests dropped.
    pub dropped: u64,
    /// Requests delayed.
    pub delayed: u64,
    /// Answers cut.
    pub cut: u64,
    /// Requests sent twice.
    pub duplicated: u64,
    /// Requests cut short on their way to the server.
    pub requests_cut: u64,
    /// The full size (head and body) of the requests cut short.
    pub request_bytes_cut: u64,
}

/// One request and its answer as the proxy carried them (kept while
/// [`Proxy::record`] is on), for timing and sizing one kind of request.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// `METHOD /path?query HTTP/1.1`.
    pub line: String,
    /// Request bytes (head and body).
    pub bytes_up: u64,
    /// Answer bytes passed to the client.
    pub bytes_down: u64,
    /// When the request had been read from the client.
    pub started: std::time::Instant,
    /// When the last answer byte was passed on.
    pub finished: Option<std::time::Instant>,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    delayed: AtomicU64,
    cut: AtomicU64,
    duplicated: AtomicU64,
    requests_cut: AtomicU64,
    request_bytes_cut: AtomicU64,
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            connections: g(&self.connections),
            requests: g(&self.requests),
            bytes_up: g(&self.bytes_up),
            bytes_down: g(&self.bytes_down),
            refused: g(&self.refused),
            dropped: g(&self.dropped),
            delayed: g(&self.delayed),
            cut: g(&self.cut),
            duplicated: g(&self.duplicated),
            requests_cut: g(&self.requests_cut),
            request_bytes_cut: g(&self.request_bytes_cut),
        }
    }

    fn reset(&self) {
        for c in [
            &self.connections,
            &self.requests,
            &self.bytes_up,
            &self.bytes_down,
            &self.refused,
            &self.dropped,
            &self.delayed,
            &self.cut,
            &self.duplicated,
            &self.requests_cut,
            &self.request_bytes_cut,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
struct Plan {
    upstream: SocketAddr,
    offline: bool,
    weather: Option<Weather>,
    scripted: VecDeque<(String, Fault)>,
    rng: StdRng,
    link: Option<Link>,
}

#[derive(Debug)]
struct Shared {
    plan: Mutex<Plan>,
    recording: AtomicBool,
    exchanges: Mutex<Vec<Exchange>>,
    /// Bumped to close every live connection.
    generation: watch::Sender<u64>,
    counters: Counters,
}

impl Shared {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn exchanges(&self) -> std::sync::MutexGuard<'_, Vec<Exchange>> {
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts an exchange record for a request; its index, if recording.
    fn begin_exchange(&self, req: &Request) -> usize {
        if !self.recording.load(Ordering::Relaxed) {
            return usize::MAX;
        }
        let mut log = self.exchanges();
        log.push(Exchange {
            line: req.line.clone(),
            bytes_up: req.bytes.len() as u64,
            bytes_down: 0,
            started: std::time::Instant::now(),
            finished: None,
        });
        log.len() - 1
    }

    fn answer_bytes(&self, exchange: usize, n: usize) {
        if exchange == usize::MAX {
            return;
        }
        if let Some(e) = self.exchanges().get_mut(exchange) {
            e.bytes_down += n as u64;
            e.finished = Some(std::time::Instant::now());
        }
    }

    fn close_all(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    fn refuse_connection(&self) -> bool {
        let mut plan = self.plan();
        if plan.offline {
            return true;
        }
        match plan.weather {
            Some(w) if w.refuse > 0.0 => plan.rng.random_bool(w.refuse.min(1.0)),
            _ => false,
        }
    }

    /// The fault for a request whose first line is `line`.
    fn decide(&self, line: &str) -> Fault {
        let mut plan = self.plan();
        if plan.offline {
            return Fault::Drop;
        }
        if let Some(i) = plan
            .scripted
            .iter()
            .position(|(prefix, _)| line.starts_with(prefix.as_str()))
        {
            return plan.scripted.remove(i).map_or(Fault::Pass, |(_, f)| f);
        }
        let Some(w) = plan.weather else {
            return Fault::Pass;
        };
        let draw: f64 = plan.rng.random();
        let mut edge = w.drop;
        if draw < edge {
            return Fault::Drop;
        }
        edge += w.delay;
        if draw < edge {
            let max = w.max_delay.as_millis().max(1) as u64;
            return Fault::Delay(Duration::from_millis(plan.rng.random_range(1..=max)));
        }
        edge += w.cut;
        if draw < edge {
            return Fault::Cut(plan.rng.random_range(0..w.max_cut.max(1)));
        }
        edge += w.duplicate;
        if draw < edge {
            return Fault::Duplicate;
        }
        Fault::Pass
    }

    /// Whether a duplicate goes to the server before the original (else concurrently).
    fn duplicate_first(&self) -> bool {
        self.plan().rng.random_bool(0.5)
    }
}

/// A running proxy. Cheap to clone; stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _accept: Arc<AbortOnDrop>,
}

impl Proxy {
    /// Starts a proxy to `upstream`; `seed` drives its random faults.
    pub async fn start(upstream: SocketAddr, seed: u64) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (generation, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            plan: Mutex::new(Plan {
                upstream,
                offline: false,
                weather: None,
                scripted: VecDeque::new(),
                rng: StdRng::seed_from_u64(seed),
                link: None,
            }),
            recording: AtomicBool::new(false),
            exchanges: Mutex::new(Vec::new()),
            generation,
            counters: Counters::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy {
            addr,
            shared,
            _accept: Arc::new(AbortOnDrop(accept)),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to hand a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Forwards to another server from now on; live connections are closed.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.shared.plan().upstream = upstream;
        self.shared.close_all();
    }

    /// Offline: every connection is closed at once (live ones too).
    pub fn set_offline(&self, offline: bool) {
        self.shared.plan().offline = offline;
        if offline {
            self.shared.close_all();
        }
    }

    /// Shapes the traffic from now on (`None`: full speed).
    pub fn set_link(&self, link: Option<Link>) {
        self.shared.plan().link = link;
    }

    /// Random faults from now on (`None`: none).
    pub fn set_weather(&self, weather: Option<Weather>) {
        self.shared.plan().weather = weather;
    }

    /// The next request whose first line starts with `prefix` (e.g.
    /// `"POST /v1/sync/push"`) gets `fault`, once. Scripted faults queue up.
    pub fn script(&self, prefix: &str, fault: Fault) {
        self.shared
            .plan()
            .scripted
            .push_back((prefix.to_owned(), fault));
    }

    /// Scripted faults not used yet.
    pub fn scripted_left(&self) -> usize {
        self.shared.plan().scripted.len()
    }

    /// Closes every live connection (keep-alive ones included).
    pub fn close_connections(&self) {
        self.shared.close_all();
    }

    /// Calm: online, no weather, no scripted faults.
    pub fn calm(&self) {
        {
            let mut plan = self.shared.plan();
            plan.offline = false;
            plan.weather = None;
            plan.scripted.clear();
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.shared.counters.reset();
    }

    /// Keeps a record of each exchange from now on (`false`: stops).
    pub fn record(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Relaxed);
    }

    /// The exchanges recorded so far; the record starts empty again.
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.shared.exchanges())
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        bump(&shared.counters.connections, 1);
        if shared.refuse_connection() {
            bump(&shared.counters.refused, 1);
            drop(client);
            continue;
        }
        let _ = client.set_nodelay(true);
        tokio::spawn(connection(shared.clone(), client));
    }
}

/// One request as read from the client.
struct Request {
    /// Head and body, exactly as received.
    bytes: Vec<u8>,
    /// `METHOD /path HTTP/1.1`.
    line: String,
}

/// Reads one request; `Ok(None)` at a clean end of the connection.
async fn read_request(
    rd: &mut OwnedReadHalf,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut length = 0usize;
    for h in head.lines().skip(1) {
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .trim()
                .parse()
                .map_err(|_| std::io::Error::other("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(std::io::Error::other(
                "chunked request bodies are not supported by the test proxy",
            ));
        }
    }
    while buf.len() < head_end + length {
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let rest = buf.split_off(head_end + length);
    let bytes = std::mem::replace(buf, rest);
    let line = head.lines().next().unwrap_or_default().to_owned();
    Ok(Some(Request { bytes, line }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The answer side of a proxied connection: how much of the current answer
/// may still pass before a cut (`usize::MAX`: no cut armed).
#[derive(Debug)]
struct CutBudget {
    left: AtomicUsize,
    fired: AtomicBool,
    /// The exchange the answer bytes belong to (`usize::MAX`: not recorded).
    exchange: AtomicUsize,
}

struct Upstream {
    wr: OwnedWriteHalf,
    pump: AbortOnDrop,
    budget: Arc<CutBudget>,
}

async fn connection(shared: Arc<Shared>, client: TcpStream) {
    let mut generation = shared.generation.subscribe();
    generation.mark_unchanged();
    let (mut client_rd, client_wr) = client.into_split();
    let mut client_wr = Some(client_wr);
    let mut upstream: Option<Upstream> = None;
    let mut buf = Vec::new();
    loop {
        let read = tokio::select! {
            r = read_request(&mut client_rd, &mut buf) => r,
            _ = generation.changed() => return,
            _ = pump_done(&mut upstream) => return,
        };
        let Ok(Some(req)) = read else {
            return;
        };
        bump(&shared.counters.requests, 1);
        bump(&shared.counters.bytes_up, req.bytes.len() as u64);
        let fault = shared.decide(&req.line);
        let link = shared.plan().link;
        if let Some(link) = link {
            tokio::time::sleep(link.latency).await;
        }
        let mut cut = None;
        let mut cut_request = None;
        match fault {
            Fault::Pass => {}
            Fault::CutRequest(n) => cut_request = Some(n),
            Fault::Refuse | Fault::Drop => {
                bump(&shared.counters.dropped, 1);
                return;
            }
            Fault::Delay(d) => {
                bump(&shared.counters.delayed, 1);
                tokio::time::sleep(d).await;
            }
            Fault::Cut(n) => cut = Some(n),
            Fault::Duplicate => {
                bump(&shared.counters.duplicated, 1);
                let target = shared.plan().upstream;
                let bytes = req.bytes.clone();
                if shared.duplicate_first() {
                    replay(target, bytes).await;
                } else {
                    tokio::spawn(replay(target, bytes));
                }
            }
        }
        if upstream.is_none() {
            let target = shared.plan().upstream;
            let Ok(up) = TcpStream::connect(target).await else {
                return;
            };
            let _ = up.set_nodelay(true);
            let Some(wr) = client_wr.take() else {
                return;
            };
            let (up_rd, up_wr) = up.into_split();
            let budget = Arc::new(CutBudget {
                left: AtomicUsize::new(usize::MAX),
                fired: AtomicBool::new(false),
                exchange: AtomicUsize::new(usize::MAX),
            });
            let pump = tokio::spawn(pump(shared.clone(), up_rd, wr, budget.clone(), link));
            upstream = Some(Upstream {
                wr: up_wr,
                pump: AbortOnDrop(pump),
                budget,
            });
        }
        let Some(up) = upstream.as_mut() else {
            return;
        };
        // No pipelining: every byte the server sends from now on answers this request.
        up.budget
            .left
            .store(cut.unwrap_or(usize::MAX), Ordering::SeqCst);
        up.budget
            .exchange
            .store(shared.begin_exchange(&req), Ordering::SeqCst);
        if let Some(n) = cut_request {
            // The link is gone: whatever the server answers never arrives.
            up.budget.left.store(0, Ordering::SeqCst);
            bump(&shared.counters.requests_cut, 1);
            bump(&shared.counters.request_bytes_cut, req.bytes.len() as u64);
            let n = n.min(req.bytes.len());
            let _ = paced_write(&mut up.wr, &req.bytes[..n], link).await;
            let _ = up.wr.shutdown().await;
            // Give the server a moment to read what arrived before the
            // connection (and the client's side of it) goes.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        if paced_write(&mut up.wr, &req.bytes, link).await.is_err() {
            return;
        }
    }
}

/// Resolves when the connection's answer pump has ended (never if there is none).
async fn pump_done(upstream: &mut Option<Upstream>) {
    match upstream {
        Some(up) => {
            let _ = (&mut up.pump.0).await;
        }
        None => std::future::pending().await,
    }
}

/// Copies the server's answers to the client, cutting where a budget says so.
async fn pump(
    shared: Arc<Shared>,
    mut up: OwnedReadHalf,
    mut client: OwnedWriteHalf,
    budget: Arc<CutBudget>,
    link: Option<Link>,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let Ok(n) = up.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        let left = budget.left.load(Ordering::SeqCst);
        if left == usize::MAX {
            if paced_write(&mut client, &chunk[..n], link).await.is_err() {
                return;
            }
            bump(&shared.counters.bytes_down, n as u64);
            shared.answer_bytes(budget.exchange.load(Ordering::SeqCst), n);
            continue;
        }
        // Only cut once the server has sent more than the budget: it has
        // answered, so it has applied the request.
        let pass = n.min(left);
        if pass > 0 {
            if client.write_all(&chunk[..pass]).await.is_err() {
                return;
            }
            bump(&shared.counters.bytes_down, pass as u64);
            shared.answer_bytes(budget.exchange.load(Ordering::SeqCst), pass);
        }
        if n > left {
            if !budget.fired.swap(true, Ordering::SeqCst) {
                bump(&shared.counters.cut, 1);
            }
            let _ = client.shutdown().await;
            return;
        }
        budget.left.store(left - pass, Ordering::SeqCst);
    }
}

/// Sends a copy of a request to the server on a fresh connection and waits
/// for the first byte of its answer (by then the server has handled it).
async fn replay(target: SocketAddr, bytes: Vec<u8>) {
    let Ok(mut conn) = TcpStream::connect(target).await else {
        return;
    };
    if conn.write_all(&bytes).await.is_err() {
        return;
    }
    let mut first = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut first)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny HTTP server: answers every request with a fixed body and
    /// counts the requests it saw.
    async fn start_origin() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let (mut rd, mut wr) = sock.into_split();
                    let mut buf = Vec::new();
                    while let Ok(Some(_)) = read_request(&mut rd, &mut buf).await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let body = "x".repeat(1000);
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if wr.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    async fn get(client: &reqwest::Client, proxy: &Proxy) -> Result<usize, reqwest::Error> {
        let r = client
            .post(format!("{}/v1/sync/push", proxy.url()))
            .body("{}")
            .send()
            .await?;
        Ok(r.bytes().await?.len())
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says() {
        let (origin, seen) = start_origin().await;
        let proxy = Proxy::start(origin, 1).await.unwrap();
        let client = reqwest::Client::new();
        assert_eq!(get(&client, &proxy).await.unwrap(), 1000);
        assert_eq!(seen.load(Ordering::SeqCst), 1);

        // A cut: the origin saw it, the client did not get the answer.
        proxy.script("POST /v1/sync/push", Fault::Cut(50));
        assert!(get(&client, &proxy).await.is_err());
        assert_eq!(seen.load(Ordering::SeqCst), 2);

        // A drop: nobody saw it.
        proxy.script("POST", Fault::Drop);
        assert!(get(&client, &proxy).await.is_err());
        assert_eq!(seen.load(Ordering::SeqCst), 2);

        // A duplicate: the origin saw it twice, the client once.
        proxy.script("POST", Fault::Duplicate);
        assert_eq!(get(&client, &proxy).await.unwrap(), 1000);
        for _ in 0..200 {
            if seen.load(Ordering::SeqCst) == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(seen.load(Ordering::SeqCst), 4);

        // Offline: refused, and nothing reaches the origin.
        proxy.set_offline(true);
        assert!(get(&client, &proxy).await.is_err());
        assert!(get(&reqwest::Client::new(), &proxy).await.is_err());
        proxy.set_offline(false);
        assert_eq!(seen.load(Ordering::SeqCst), 4);
        assert_eq!(get(&client, &proxy).await.unwrap(), 1000);

        // A new upstream: live connections close, new ones go there.
        let (other, other_seen) = start_origin().await;
        proxy.set_upstream(other);
        // The client may try its pooled connection first and see it closed,
        // as it would when a server restarts.
        let first = get(&client, &proxy).await;
        if first.is_err() {
            assert_eq!(get(&client, &proxy).await.unwrap(), 1000);
        }
        assert_eq!(other_seen.load(Ordering::SeqCst), 1);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            5,
            "nothing more reached the old one"
        );

        let stats = proxy.stats();
        assert_eq!(
            (stats.cut, stats.dropped, stats.duplicated, stats.refused),
            (1, 1, 1, 1),
            "{stats:?}"
        );
        assert!(stats.bytes_down >= 4000 && stats.bytes_up > 0, "{stats:?}");
    }

    /// An origin that reads one request head and reports how many body
    /// bytes arrived before the connection ended.
    async fn start_counting_origin() -> (SocketAddr, tokio::sync::mpsc::Receiver<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut all = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        all.extend_from_slice(&buf[..n]);
                    }
                    let body = find(&all, b"\r\n\r\n").map_or(0, |i| all.len() - i - 4);
                    let _ = tx.send(body).await;
                });
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn a_cut_request_reaches_the_server_in_part_and_the_client_hears_nothing() {
        let (origin, mut arrived) = start_counting_origin().await;
        let proxy = Proxy::start(origin, 2).await.unwrap();
        proxy.script("PATCH", Fault::CutRequest(1_000));
        let client = reqwest::Client::new();
        let sent = client
            .patch(format!("{}/v1/uploads/x", proxy.url()))
            .body(vec![7u8; 10_000])
            .send()
            .await;
        assert!(sent.is_err(), "the client gets no answer");
        let body = arrived.recv().await.unwrap();
        assert!(body > 0 && body < 1_000, "{body} body bytes arrived");
        let stats = proxy.stats();
        assert_eq!(stats.requests_cut, 1);
        assert!(stats.request_bytes_cut > 10_000, "{stats:?}");
    }

    #[tokio::test]
    async fn a_slow_link_paces_the_bytes_and_adds_latency() {
        let (origin, _) = start_origin().await;
        let proxy = Proxy::start(origin, 3).await.unwrap();
        proxy.set_link(Some(Link {
            bytes_per_second: 20_000,
            latency: Duration::from_millis(100),
        }));
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        let r = client
            .post(format!("{}/v1/sync/push", proxy.url()))
            .body(vec![1u8; 4_000])
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 1000);
        // 100 ms latency, ~4.1 KB up and ~1.05 KB down at 20 KB/s: ~350 ms.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
}
