//! How long `/screenshot` takes to draw a pane: a 200×50 capture with a colour change in every
//! cell (the worst case for the glyph cache and the PNG encoder), rendered 50 times.
//! Run with `cargo bench -p center --bench pane_render`; target: p50 under 50 ms.

use std::time::Instant;

fn main() {
    let line: String = (0..200)
        .map(|i| format!("\x1b[3{}m{}", i % 8, char::from(b'!' + (i % 90) as u8)))
        .collect();
    let capture = vec![line; 50].join("\n");
    let png = center::media::pane_image::render_png(&capture).expect("renders");
    let mut times: Vec<f64> = (0..50)
        .map(|_| {
            let start = Instant::now();
            let _ = center::media::pane_image::render_png(&capture);
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "pane_render 200x50: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, PNG {} KB",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1],
        png.len() / 1024
    );
}
