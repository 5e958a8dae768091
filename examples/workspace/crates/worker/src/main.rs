fn main() {
    println!("worker: waiting for jobs");
}
