"""Resolved configurations of ``vidpolicy tokenizer train`` and ``vidpolicy tokenize`` (saved as config.json)."""

from __future__ import annotations

from dataclasses import dataclass

from vidpolicy.common.cli_args import opt


@dataclass
class TokenizerTrainConfig:
    videos: str = opt("", "directory of videos (searched recursively) or a .txt list of video paths")
    out: str = opt("", "run directory: model/, checkpoints/, logs/, loss.png, manifest.csv, eval.json")
    frames: int = opt(4, "frames per clip (4 -> one latent frame with x4 temporal down-sampling)")
    size: int = opt(96, "clip side in pixels: shorter side resized to this, then centre-cropped")
    fps: float | None = opt(None, "sample videos at this frame rate (default: every native frame)")
    clip_stride: int | None = opt(None, "sampled frames between clip starts (default: --frames, no overlap)")
    codebook_size: int = opt(2048, "number of codes (the paper: 2048)")
    embedding_dim: int = opt(32, "code dimension (the paper: 256; 32 matches its held-out PSNR at equal training "
                             "time, 96², with a 3x cheaper code search in tokenize and training)")
    encoder: str = opt("patch", "patch (4x4x4 patches folded into channels, a convolution at the latent size; "
                       "over 7x cheaper) or videogpt (the decoder's mirror image, as the paper, with "
                       "--encoder-res-layers 2)")
    hidden_channels: int = opt(128, "width of the 3D convolutions")
    res_layers: int = opt(2, "residual blocks in the decoder (96², 3 CPU-min, without attention: 2 / 4 / 8 blocks "
                          "24.76 / 24.64 / 24.54 dB held-out with --crops 5; 20 CPU-min with attention, AMD: 1 / 2 "
                          "blocks 25.58 / 25.65 dB with 64 wide upsampling, 2 / 3 blocks 25.60 / 25.44 with 128)")
    encoder_res_layers: int = opt(0, "residual blocks in the encoder (VideoGPT's has --res-layers); each costs "
                                  "tokenize ~0.75 ms per clip on a CPU core and bought no PSNR at equal CPU time "
                                  "(96², 4 min: 0 / 1 / 2 blocks 24.44 / 24.35 / 24.13 dB)")
    up_channels: int = opt(64, "width of the decoder's transposed convolutions from the latent to the clip (the "
                           "first is the step's largest product); 96², 20 CPU-min (AMD): 64 / 128 wide 25.65 / 25.60 "
                           "dB held-out at 0.153 / 0.187 s a step")
    attn_heads: int = opt(2, "heads of axial attention in each decoder block (0: none, a 29% cheaper training step; "
                          "96² held-out with --crops 5: ahead at 3 CPU-min, 24.76 vs 24.59 dB, behind at 20, 25.57 vs "
                          "25.67)")
    downsample: tuple[int, int, int] = opt((4, 4, 4), "down-sampling factors over T H W (powers of two)")
    ema_decay: float = opt(0.99, "EMA decay of the codebook")
    codebook_restart: str = opt("error", "where unused codes restart: random (a random encoder output of the batch, "
                                "as VideoGPT) or error (outputs drawn in proportion to their squared distance from "
                                "their code); 96², 20 CPU-min of steps, --flips htvd: random / error 25.91 / 25.94 dB "
                                "held-out")
    commitment_weight: float = opt(0.25, "weight of the commitment loss")
    augment: bool = opt(True, "random flips (--flips) and clip-start jitter within the clip stride")
    flips: str = opt("htvd", "with --augment, each of these flips a random half of the training clips: h left-right, "
                     "t backwards in time, v upside down, d height and width swapped (96², 20 CPU-min of steps, seed "
                     "0, AMD: h / ht / htvd 25.86 / 25.73 / 25.91 dB held-out; h alone vs the defaults of all three "
                     "options, seeds 0 and 1: 25.86 / 25.73 vs 26.05 / 25.92; on fixed-camera robot video, the demo's "
                     "600 steps, h 30.63 vs htvd 29.26 dB: the demo flips h)")
    crops: int = opt(5, "training squares per frame, spread along its longer side (1: the centre square only, as "
                     "evaluation and tokenize cut; 96² held-out, 5 squares vs 1: 24.59 vs 24.49 dB after 3 CPU-min, "
                     "25.67 vs 25.55 after 20)")
    small_crops: float = opt(0.65, "fraction of --max-steps, the first ones, trained on one random --small-crop-size "
                             "square cut from each batch (0: none); a 48² step costs 54% of a 96² one, so the early "
                             "steps come cheap (96², 20 CPU-min, seed 0, same machine state: 0.65 vs 0 26.06 / 25.88 dB "
                             "held-out, 17,919 / 12,570 steps)")
    small_crop_size: int = opt(48, "side of the --small-crops squares in pixels: a multiple of the spatial "
                               "down-sampling (no crop when it is not under --size)")
    max_steps: int = opt(2000, "optimizer steps in total (raise it and rerun to train longer)")
    batch_size: int = opt(4, "clips per process per micro-batch; 96², 20 CPU-min (AMD, fixed-step runs): batch 4 / 8 "
                          "25.86 / 25.65 dB held-out (14,300 / 7,847 steps); batch 2 (16,700 steps) and batch 4 at lr "
                          "4e-4 trailed batch 4 at 6e-4 in training PSNR (by 0.4 dB at 30% of the budget, 0.08 at 60%)")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    lr: float = opt(6e-4, "Adam learning rate (96², 4 CPU-min: 24.3 dB held-out at 6e-4 and 1.2e-3, 24.0 at 3e-4)")
    adam_beta2: float = opt(0.99, "Adam's second-moment decay (96², 20 CPU-min of steps, --flips htvd, seed 0: "
                            "0.999 / 0.99 25.91 / 25.97 dB held-out)")
    lr_decay: bool = opt(True, "cosine decay of the learning rate to 0 at --max-steps after 100 warm-up steps "
                         "(raising --max-steps later restarts the decay); --no-lr-decay: constant")
    max_grad_norm: float = opt(1.0, "gradient clipping norm")
    mixed_precision: str = opt("bf16", "bf16 or no")
    nan_policy: str = opt("stop", "on a NaN/Inf loss: stop (keep the last good checkpoint) or skip the batch")
    save_every: int = opt(250, "checkpoint every N steps")
    log_every: int = opt(10, "log scalars every N steps")
    eval_every: int = opt(1000, "log held-out PSNR/SSIM on up to 32 clips every N steps as heldout_psnr / heldout_ssim "
                          "(0: never; the end of the run evaluates up to 128 clips into eval.json either way)")
    num_workers: int = opt(1, "DataLoader decode workers per process (each caches decoded videos)")
    cache_gb: float = opt(2.0, "decoded-video cache per worker, GiB (random access into H.264 is slow)")
    holdout_fraction: float = opt(0.1, "fraction of files (or clips) held out for the PSNR/SSIM evaluation")
    seed: int = opt(0, "random seed")


@dataclass
class TokenizeConfig:
    tokenizer: str = opt("", "a `tokenizer train` run directory (or its model/ directory)")
    out: str = opt("", "token directory: shards/, index.json, manifest.csv")
    videos: str | None = opt(None, "directory of videos or a .txt list (give this or --dataset)")
    dataset: str | None = opt(None, "a LeRobotDataset root: tokenize its camera video episode by episode")
    camera: str | None = opt(None, "LeRobot camera key (default: the first video key)")
    manifest: str | None = opt(None, "CSV with a file column and a caption/instruction column")
    fps: float | None = opt(None, "sample videos at this frame rate (default: every native frame)")
    clip_stride: int | None = opt(None, "sampled frames between clip starts (default: clip length, no overlap)")
    files_per_shard: int = opt(16, "input files (or episodes) per shard; a shard is the unit of resume")
    batch_size: int = opt(32, "clips per encoder batch")
    num_workers: int = opt(2, "decode workers")
    verify: bool = opt(False, "check every finished shard against its checksum first; re-tokenize the damaged ones")
    precision: str = opt("bf16", "encoder precision: bf16 (1.4-2x faster encoder on a CPU; 98% of tokens identical "
                         "to fp32 on real video; the code search stays fp32) or fp32")
    tokenizer_sha: str = opt("", "fingerprint of the tokenizer weights (filled in automatically)", cli=False)
