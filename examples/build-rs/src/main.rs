fn main() {
    let verbose = std::env::args().any(|arg| arg == "--verbose");
    println!("server listening on :3000 (verbose: {verbose})");
}
