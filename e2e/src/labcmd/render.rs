//! Terminal output: a spinner with elapsed time on slow steps, the live table (redrawn in place
//! on a terminal), plain progress lines with `--once` or when the output is not a terminal.
//! Human output goes to stdout, or to stderr with `--json` (stdout then carries only JSON).

use super::observe::{Row, Snapshot};
use super::scenario::Mode;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Where and how to print.
#[derive(Clone)]
pub struct Ui {
    to_stderr: bool,
    /// Redraw in place (a terminal and no `--once`).
    pub live: bool,
    color: bool,
    /// Lines of the table drawn last (live mode), to move the cursor back over them.
    drawn: Arc<Mutex<usize>>,
    /// Last rows printed in plain mode, to print only changes.
    last_plain: Arc<Mutex<Vec<String>>>,
}

impl Ui {
    pub fn new(json: bool, once: bool) -> Ui {
        let tty = if json {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        Ui {
            to_stderr: json,
            live: tty && !once,
            color: tty && std::env::var_os("NO_COLOR").is_none(),
            drawn: Arc::default(),
            last_plain: Arc::default(),
        }
    }

    fn write(&self, s: &str) {
        // A closed pipe must not abort the run (teardown still has to happen).
        if self.to_stderr {
            let _ = std::io::stderr().lock().write_all(s.as_bytes());
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(s.as_bytes());
            let _ = o.flush();
        }
    }

    /// One line of output.
    pub fn line(&self, s: impl AsRef<str>) {
        self.write(&format!("{}\n", s.as_ref()));
    }

    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }

    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }

    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Runs `f` (which must not print) with a spinner and the elapsed time, then prints the
    /// outcome and how long it took.
    pub fn step<T>(&self, what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = if self.live {
            let (ui, stop, what) = (self.clone(), stop.clone(), what.to_string());
            Some(std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    ui.write(&format!(
                        "\r\x1b[2K{} {what} {:.1}s",
                        SPINNER[i % SPINNER.len()],
                        t0.elapsed().as_secs_f64()
                    ));
                    i += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                ui.write("\r\x1b[2K");
            }))
        } else {
            self.line(format!("… {what}"));
            None
        };
        let r = f();
        stop.store(true, Ordering::Relaxed);
        if let Some(h) = spinner {
            let _ = h.join();
        }
        let secs = t0.elapsed().as_secs_f64();
        match &r {
            Ok(_) => self.line(format!("{} {what} ({secs:.1}s)", self.green("✓"))),
            Err(e) => self.line(format!("{} {what} ({secs:.1}s): {e:#}", self.red("✗"))),
        }
        r
    }

    /// Shows the snapshot: redrawn in place (live), or as plain lines for the rows that
    /// changed since the last call. `status` is the spinner line under the live table.
    pub fn show(&self, snap: &Snapshot, status: &str, elapsed: Duration) {
        if self.live {
            let text = format!(
                "{}{} {status} {:.1}s\n",
                table(self, snap),
                SPINNER[(elapsed.as_millis() / 100) as usize % SPINNER.len()],
                elapsed.as_secs_f64()
            );
            let mut drawn = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
            let up = if *drawn > 0 {
                format!("\x1b[{}A", *drawn)
            } else {
                String::new()
            };
            // Clear to the end of the screen: the new table may be shorter.
            self.write(&format!("{up}\r\x1b[0J{text}"));
            *drawn = text.lines().count();
        } else {
            let lines: Vec<String> = snap
                .rows
                .iter()
                .map(row_line)
                .chain(std::iter::once(sessions_line(snap)))
                .collect();
            let mut last = self.last_plain.lock().unwrap_or_else(|p| p.into_inner());
            for (i, l) in lines.iter().enumerate() {
                if last.get(i) != Some(l) {
                    self.line(format!("[{:5.1}s] {l}", elapsed.as_secs_f64()));
                }
            }
            *last = lines;
        }
    }

    /// Ends a live table: the next output goes below it (the last table stays on screen).
    pub fn end_table(&self) {
        *self.drawn.lock().unwrap_or_else(|p| p.into_inner()) = 0;
    }

    /// The full table once (plain mode's final state; live mode shows it all along).
    pub fn print_table(&self, snap: &Snapshot) {
        self.write(&table(self, snap));
    }
}

fn ips(r: &Row) -> String {
    if r.ips.is_empty() {
        "—".into()
    } else {
        r.ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn announcers(r: &Row) -> String {
    let per_ip: Vec<String> = r
        .announced_by
        .values()
        .map(|n| {
            if n.is_empty() {
                "—".to_string()
            } else {
                n.join(",")
            }
        })
        .collect();
    if r.mode == Some(Mode::Bgp) && r.announced_by.values().all(Vec::is_empty) {
        // The speakers' status lists layer 2 announcements only; for BGP the router's routes
        // say which nodes advertise (session names are `node<i>v4` / `node<i>v6`).
        let mut nodes: Vec<String> = r
            .router
            .iter()
            .flat_map(|rt| &rt.learned_from)
            .map(|s| s.trim_end_matches("v4").trim_end_matches("v6").to_string())
            .collect();
        nodes.sort();
        nodes.dedup();
        if !nodes.is_empty() {
            return format!("{} (router)", nodes.join(","));
        }
    }
    if per_ip.is_empty() {
        "—".into()
    } else {
        per_ip.join(", ")
    }
}

fn client(r: &Row, full: bool) -> String {
    if r.expect == "unservable" {
        return match &r.reason {
            // The table stays narrow; the reason follows it in full.
            Some(_) if !full => "not served (reason below)".into(),
            Some(why) => why.clone(),
            None => "(no AllocationFailed event yet)".into(),
        };
    }
    let mut parts: Vec<String> = Vec::new();
    if r.mode == Some(Mode::Bgp) {
        for rt in &r.router {
            if rt.learned_from.is_empty() {
                parts.push("no route at router".into());
            } else {
                parts.push(format!("router via {}", rt.learned_from.join(",")));
            }
        }
        parts.dedup();
    }
    for p in &r.probes {
        parts.push(match &p.answered_by {
            Some(n) if p.reachable => format!("✓ {n}"),
            _ => "✗".to_string(),
        });
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(" ")
    }
}

/// One row as a line (plain mode).
fn row_line(r: &Row) -> String {
    let mode = r.mode.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
    let verdict = if r.ok {
        "ok".to_string()
    } else {
        r.problem.clone().unwrap_or_default()
    };
    format!(
        "{} ({mode}): addresses {}; announced by {}; client: {} [{verdict}]",
        r.name,
        ips(r),
        announcers(r),
        client(r, true)
    )
}

fn sessions_line(s: &Snapshot) -> String {
    if s.sessions.is_empty() {
        return "BGP sessions at router: none configured".into();
    }
    let list: Vec<String> = s
        .sessions
        .iter()
        .map(|x| format!("{} {}", x.name, x.info))
        .collect();
    format!("BGP sessions at router: {}", list.join(", "))
}

/// The table as text.
pub fn table(ui: &Ui, snap: &Snapshot) -> String {
    let head = [
        "SERVICE",
        "TYPE",
        "ADDRESSES",
        "ANNOUNCED BY",
        "CLIENT (http://IP:80)",
        "",
    ];
    let cells: Vec<[String; 6]> = snap
        .rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.mode.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                ips(r),
                announcers(r),
                client(r, false),
                if r.ok {
                    "ok".into()
                } else {
                    r.problem.clone().unwrap_or_default()
                },
            ]
        })
        .collect();
    let mut w = [0usize; 6];
    for row in std::iter::once(head.map(String::from)).chain(cells.iter().cloned()) {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let fmt = |row: &[String; 6]| {
        let mut l = String::new();
        for (i, c) in row.iter().enumerate().take(5) {
            l += &format!("{c}{}  ", " ".repeat(w[i] - c.chars().count()));
        }
        l
    };
    let mut out = ui.bold(fmt(&head.map(String::from)).trim_end()) + "\n";
    for (row, r) in cells.iter().zip(&snap.rows) {
        let verdict = if r.ok {
            ui.green("✓")
        } else {
            ui.red(&format!("✗ {}", row[5]))
        };
        out += &format!("{}{verdict}\n", fmt(row));
    }
    for r in snap.rows.iter().filter(|r| r.expect == "unservable") {
        if let Some(why) = &r.reason {
            out += &format!("why {} has no address: {why}\n", r.name);
        }
    }
    out += &sessions_line(snap);
    out += "\n";
    if !snap.speakers_down.is_empty() {
        out += &format!(
            "speaker status API not answering: {}\n",
            snap.speakers_down.join(", ")
        );
    }
    out
}
