"""The sampling study (`make sampling`, `dsmexp-sampling`): the toy of Song & Ermon (2019) sampled from
the exact score and from the score each objective learns."""
