//! Decrypting the secrets of a load: 1,000 ciphertexts at distinct key paths (target ≤ 5 ms).

use criterion::{criterion_group, criterion_main, Criterion};
use potter_secrets::{decrypt, encrypt, Keyring};

fn decrypt_thousand_secrets(c: &mut Criterion) {
    let mut keyring = Keyring::generate("prod").unwrap();
    let mut secrets = Vec::with_capacity(1_000);
    for index in 0..1_000 {
        // Half made with an older key, as after a rotation in progress.
        if index == 500 {
            keyring.add_new_key();
        }
        let path = vec![
            "services".to_owned(),
            format!("service_{index}"),
            "api_key".to_owned(),
        ];
        let sealed = encrypt(&keyring, "prod", &path, &format!("sk-live-{index:040}")).unwrap();
        secrets.push((path, sealed));
    }
    c.bench_function("decrypt 1000 secrets", |b| {
        b.iter(|| {
            for (path, sealed) in &secrets {
                let plaintext = decrypt(&keyring, "prod", path, sealed).unwrap();
                std::hint::black_box(plaintext.len());
            }
        })
    });
}

criterion_group!(benches, decrypt_thousand_secrets);
criterion_main!(benches);
