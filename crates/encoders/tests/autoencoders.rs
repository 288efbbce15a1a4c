//! The autoencoder interface: identity, the config spec, the weights fingerprint, posteriors.

use flowscale_encoders::autoencoders::fingerprint::files_sha256;
use flowscale_encoders::autoencoders::{
    Autoencoder, AutoencoderSpec, IdentityAutoencoder, Posterior,
};
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

#[test]
fn identity_is_pixel_space() {
    let ae = IdentityAutoencoder::new(Device::Cpu);
    assert_eq!((ae.latent_channels(), ae.downsample_factor()), (3, 1));
    assert_eq!(ae.name(), "identity");
    let pixels = Tensor::rand([2, 3, 5, 7], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let post = ae.encode(&pixels.to_kind(Kind::Half)).unwrap();
    assert_eq!(post.mean.kind(), Kind::Float);
    let err = (&post.mean - &pixels).abs().max().double_value(&[]);
    assert!(err < 1e-3, "{err}");
    assert_eq!(post.std.abs().max().double_value(&[]), 0.0);
    let back = ae.decode(&post.mean).unwrap();
    assert_eq!((&back - &post.mean).abs().max().double_value(&[]), 0.0);
    assert!(ae
        .encode(&Tensor::zeros([2, 1, 4, 4], (Kind::Float, Device::Cpu)))
        .is_err());
    assert!(ae
        .decode(&Tensor::zeros([2, 4, 4, 4], (Kind::Float, Device::Cpu)))
        .is_err());
    // The digest of an empty listing.
    assert_eq!(
        ae.weights_sha256().unwrap(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn fingerprint_is_sha256sum_of_the_sorted_listing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("ae_a");
    let b = tmp.path().join("ae_b.txt");
    std::fs::write(&a, "abc").unwrap();
    std::fs::write(&b, "hello\n").unwrap();
    // `sha256sum ae_a ae_b.txt | sha256sum`, computed with coreutils.
    let want = "dcca10bf6b27e52cd61712af891abdc5a11ccf0daa8c8122cc2d08ddeb2a174d";
    assert_eq!(files_sha256(&[a.clone(), b.clone()]).unwrap(), want);
    assert_eq!(files_sha256(&[b.clone(), a.clone()]).unwrap(), want);
    std::fs::write(&b, "hello!\n").unwrap();
    assert_ne!(files_sha256(&[a.clone(), b]).unwrap(), want);
    let missing = tmp.path().join("absent.safetensors");
    let e = files_sha256(&[missing]).unwrap_err().to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
}

#[test]
fn spec_parses_each_kind_from_toml() {
    let kl: AutoencoderSpec = toml::from_str("kind = \"kl\"\npath = \"/m/vae\"\n").unwrap();
    assert_eq!(
        kl,
        AutoencoderSpec::Kl {
            path: PathBuf::from("/m/vae")
        }
    );
    let taef2: AutoencoderSpec = toml::from_str("kind = \"taef2\"\npath = \"t\"\n").unwrap();
    assert_eq!(taef2.kind_name(), "taef2");
    let id: AutoencoderSpec = toml::from_str("kind = \"identity\"\n").unwrap();
    assert_eq!(id, AutoencoderSpec::Identity);
    assert_eq!(
        id.load(Kind::Float, Device::Cpu).unwrap().name(),
        "identity"
    );
    for bad in [
        "kind = \"vqgan\"\npath = \"x\"\n",
        "kind = \"kl\"\n",
        "kind = \"kl\"\npath = \"x\"\nscale = 2\n",
    ] {
        assert!(toml::from_str::<AutoencoderSpec>(bad).is_err(), "{bad}");
    }
    let e = match (AutoencoderSpec::Kl {
        path: PathBuf::from("/nonexistent/vae"),
    })
    .load(Kind::Float, Device::Cpu)
    {
        Ok(_) => panic!("loaded a missing folder"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("/nonexistent/vae/config.json"), "{e}");
}

#[test]
fn posteriors_concatenate_along_the_batch() {
    let both = Posterior::cat(&[
        Posterior {
            mean: Tensor::zeros([1, 2], (Kind::Float, Device::Cpu)),
            std: Tensor::ones([1, 2], (Kind::Float, Device::Cpu)),
        },
        Posterior {
            mean: Tensor::ones([2, 2], (Kind::Float, Device::Cpu)),
            std: Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
        },
    ])
    .unwrap();
    assert_eq!(both.mean.size(), vec![3, 2]);
    assert_eq!(
        Vec::<f32>::try_from(both.std.flatten(0, 1)).unwrap(),
        vec![1., 1., 0., 0., 0., 0.]
    );
}
