//! Connects to a Unix socket and says what the server did, for tests that run it as another user
//! (`Command::uid`): `unreachable <error kind>` (e.g. the directory is closed to this user),
//! `closed` (the server dropped the connection at once) or `open` (it waited for us to speak).
//!
//! `uds-probe <socket path>`

use std::{io::Read, os::unix::net::UnixStream, time::Duration};

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: uds-probe <socket path>");
        std::process::exit(2);
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(err) => {
            println!("unreachable {:?}", err.kind());
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => println!("closed"),
        Ok(_) => println!("open"), // the server spoke first (an HTTP/2 settings frame)
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            println!("open")
        }
        Err(_) => println!("closed"), // reset
    }
}
