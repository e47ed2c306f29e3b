//! Progress of a long lab operation (`lab up`, `deploy`): one line per step with the time it
//! took, so a slow step is visible at a glance.

use std::time::Instant;

/// Progress reporting: one line per step with the time it took.
pub struct Progress<'a> {
    start: Instant,
    sink: &'a mut dyn FnMut(&str),
}

impl<'a> Progress<'a> {
    /// Reports through `sink` (e.g. printing to stderr).
    pub fn new(sink: &'a mut dyn FnMut(&str)) -> Progress<'a> {
        Progress {
            start: Instant::now(),
            sink,
        }
    }

    /// Runs one step and reports `label: <detail>` with its duration.
    pub fn step<T, E>(
        &mut self,
        label: &str,
        f: impl FnOnce() -> Result<(T, String), E>,
    ) -> Result<T, E> {
        let t = Instant::now();
        let r = f();
        match &r {
            Ok((_, detail)) => self.finish(label, t, detail),
            Err(_) => self.finish(label, t, "FAILED"),
        }
        r.map(|(v, _)| v)
    }

    /// Reports the end of a step that started at `started`.
    pub fn finish(&mut self, label: &str, started: Instant, detail: &str) {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let at = self.start.elapsed().as_secs_f64();
        (self.sink)(&format!("[{at:7.3}s] {label}: {detail} ({ms:.0} ms)"));
    }

    /// Reports a line without a step.
    pub fn note(&mut self, line: &str) {
        let at = self.start.elapsed().as_secs_f64();
        (self.sink)(&format!("[{at:7.3}s] {line}"));
    }

    /// Time since the first step.
    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}
