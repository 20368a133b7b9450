"""UIDCG, UE-Inferencing Distributed Cooperative Generating: a chain of ESs runs consecutive step ranges.

    UE: encode image, noise to the strength -> seed
    UE --seed, prompt--> ES1 --seed, prompt--> ES2 ... --> ESn    ESi: resume, its range of steps
    UE <--------------------image-------------------------- ESn   ESn: decode
"""


def run(st):
    ue, chain = "UE", st.g.es
    seed = st.resume(chain[0], *st.send_seed(ue, chain[0], st.start(ue, st.task.image)))
    prompt = st.send_prompt(ue, chain[0], st.task.prompt)
    for i, es in enumerate(chain):
        if i > 0:
            seed = st.resume(es, *st.send_seed(chain[i - 1], es, seed))
            prompt = st.send_prompt(chain[i - 1], es, prompt or "")
        seed = st.denoise(es, seed, st.encode_prompt(es, prompt), to=st.share(seed, len(chain) - i))
    return st.send_image(chain[-1], ue, st.decode(chain[-1], seed))[0]
