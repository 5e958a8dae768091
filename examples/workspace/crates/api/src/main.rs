fn main() {
    let listen = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "0.0.0.0:8080".to_owned());
    println!("api would listen on {listen}");
}
