"""The mathematics: networks, datasets with their exact reference scores, kernels, objectives and the
held-out evaluation. torch and numpy only: nothing here imports Hydra, OmegaConf, the config, records or
training layers (docs/architecture.md, Layers)."""
