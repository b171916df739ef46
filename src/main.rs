fn main() {
    skyvault::install_crypto_provider();
}
