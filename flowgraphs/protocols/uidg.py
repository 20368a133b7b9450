"""UIDG, UE-Inferencing Distributed Generating: n ESs generate one image jointly, each its own tile.

    UE: encode its image, noise to the strength -> seed
    UE ==seed, prompt==> ES1..ESn    one broadcast each: every ES hears its own noisy copy
    ESi <-border-> ESj               the copies' tiles fused, one noise level agreed, resume; then every
                                     step ESi advances its tile seeing the whole latent, and the tiles are
                                     exchanged over backhaul every `exchange_every` steps
    UE <--image tile i-- ESi         ESi decodes with context, sends its tile; the UE stitches
"""


def run(st):
    ue, servers = "UE", st.g.es
    seed = st.start(ue, st.ue_image())
    received = st.upload_latent(ue, servers, seed)
    conds = st.prompt_at(ue, servers)
    joint = st.joint.start([s for s, _ in received], noise_vars=[v for _, v in received])
    joint = st.joint.denoise(joint, conds, last_exchange=True)
    parts = [st.send_image(es, ue, st.joint.decode_tile(es, joint, i))[0] for i, es in enumerate(servers)]
    return st.stitch(ue, parts, joint.layout)
