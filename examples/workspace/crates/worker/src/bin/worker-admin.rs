fn main() {
    println!("worker-admin: no jobs to inspect");
}
