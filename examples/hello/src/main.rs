fn main() {
    println!("Hello from a cargo-hive image!");
}
