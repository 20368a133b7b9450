"""UIDCG, UE-Inferencing Distributed Cooperative Generating: a chain of ESs runs consecutive step ranges.

    UE: encode its image, noise to the strength -> seed (the image must be at the UE)
    UE --seed--> ES1; UE ==prompt==> ES1..ESn (one broadcast: the prompt never goes over backhaul)
    ES1 --seed--> ES2 ... --> ESn    backhaul hops (wired by default); ESi: resume, its range of steps
    UE <--------------------image-------------------------- ESn   ESn: decode
"""


def run(st):
    ue, chain = "UE", st.g.es
    seed = st.resume(chain[0], *st.send_latent(ue, chain[0], st.start(ue, st.ue_image())))
    prompts = st.upload_prompt(ue, chain, st.task.prompt)
    for i, es in enumerate(chain):
        if i > 0:
            seed = st.resume(es, *st.send_latent(chain[i - 1], es, seed))
        seed = st.denoise(es, seed, st.encode_prompt(es, prompts[i]), to=st.share(seed, len(chain) - i))
    return st.send_image(chain[-1], ue, st.decode(chain[-1], seed))[0]
