import { OFFLINE_BASE_IMAGES } from '../app/src/topology';

/** Prints the offline base image names as shell assignments, for scripts/offline-images.sh. */
const names = {
  DEBIAN: OFFLINE_BASE_IMAGES.debian,
  NODE: OFFLINE_BASE_IMAGES.node,
  NGINX: OFFLINE_BASE_IMAGES.nginx,
  PROMETHEUS: OFFLINE_BASE_IMAGES.prometheus,
  EXPORTER: OFFLINE_BASE_IMAGES.nginxExporter,
  NATS: OFFLINE_BASE_IMAGES.nats,
};
for (const [variable, image] of Object.entries(names)) console.log(`${variable}='${image}'`);
