// The counter on minikube from TypeScript, with the SDK generated from the sconify package's schema
// (`pulumi package add`, or `pulumi package gen-sdk`). Names follow TypeScript's conventions (camelCase).
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as sconify from "@pulumi-sconify/sconify";

const cluster = new sconify.MinikubeCluster("cluster", { profile: "sconify-ts" });
const inCluster = { providers: { kubernetes: new k8s.Provider("k8s", { kubeconfig: cluster.kubeconfig }) } };
const casImage = new sconify.CasImage("cas-image", {
    base: "docker.io/library/python:3.12-slim",
    target: pulumi.interpolate`${cluster.registry}/sconify/cas:ts`,
    insecureRegistries: cluster.insecureRegistries,
});
const cas = new sconify.CasDeployment("cas", { image: casImage.image, externalHost: cluster.nodeAddress }, inCluster);
const native = new sconify.DockerfileImage("counter", {
    context: "../counter",
    registry: cluster.registry,
    insecureRegistry: true,
});
const counter = new sconify.ConfidentialStatefulService("counter", {
    nativeImage: native.image,
    target: pulumi.interpolate`${cluster.registry}/sconify/counter:ts`,
    command: "python3 /code/app.py",
    cas: { address: cas.address, attestationAddress: cas.attestationAddress, caCertificate: cas.caCertificate },
    namespace: "counter-ts",
    dirs: ["/code"],
    volumes: [{ name: "V1", path: "/V1" }],
    workloadType: sconify.WorkloadType.Job,
    storage: cluster.storage,
    placement: cluster.placement,
    insecureRegistries: [cluster.registry],  // a list given at once (each entry may be an Output)
}, inCluster);

export const image = counter.image;
export const session = counter.sessionName;
